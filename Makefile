# The few targets the README names. Each creates the virtual environment when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# what `make demo` (and web, migrate, worker) need: orgsync and the simulated AWS (the `sim`
# extra), not the test tools; `make test` installs the `test` extra over it
DEMO_STAMP := $(VENV)/.demo-installed
CREATED := $(VENV)/.created
# pytest processes of `make test` (pytest-xdist; the tests wait on workers, AWS and brokers more
# than on the CPU, so two halve the time on two cores)
TEST_PROCESSES ?= 2

.PHONY: compose-env demo wheel test test-faults test-faults-cluster cluster cluster-stop test-unit test-integration test-e2e test-browser lint typecheck worker migrate clean bench bench-smoke bench-web web screenshots chromium prometheus oidc-provider

$(CREATED):
	@pkg-config --exists icu-uc && command -v g++ >/dev/null || { \
	  sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$sudo apt-get update && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	    libicu-dev pkg-config g++; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	touch $(CREATED)

$(DEMO_STAMP): pyproject.toml | $(CREATED)
	$(BIN)/pip install --quiet -e '.[sim]'
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml | $(CREATED)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP) $(DEMO_STAMP)

## demo: the whole pipeline on an embedded simulated AWS organization (needs local PostgreSQL and RabbitMQ)
demo: $(DEMO_STAMP)
	$(BIN)/orgsync migrate
	$(BIN)/orgsync demo

## wheel: build dist/orgsync-<version>-py3-none-any.whl (pip builds it; `python -m build` needs
## the `build` package, which nothing here installs)
wheel: $(CREATED)
	$(BIN)/pip wheel --no-deps --wheel-dir dist .

## compose-env: write .env with generated passwords for `docker compose` (never overwrites it)
compose-env:
	sh deploy/compose/generate-env .env

## test: lint, type checks, then unit, integration, end-to-end and browser tests (in
## TEST_PROCESSES processes, 2 by default), then the fault harness
test: $(STAMP) prometheus lint typecheck chromium oidc-provider
	$(BIN)/python -m pytest -m "not faults" -n $(TEST_PROCESSES) --dist loadfile --durations=15
	$(MAKE) test-faults
	$(MAKE) test-faults-cluster

## test-faults: kill -9, RabbitMQ and PostgreSQL restarts, duplicates and throttling over a
## 300-account organization, on private servers; prints lost/duplicated/wrong per fault
## (ORGSYNC_FAULT_SEED=<n> replays a run)
test-faults: $(STAMP)
	$(BIN)/python -m pytest -m "faults and not cluster" tests/faults -s

## test-faults-cluster: a node killed, stopped, restarted in turn and paused during a 300-account
## sync on a three-node RabbitMQ cluster with quorum queues; the same table (skipped when the
## cluster cannot start here, a failure under CI=true)
test-faults-cluster: $(STAMP)
	$(BIN)/python -m pytest -m cluster tests/faults -s

## cluster: three RabbitMQ nodes of the installed rabbitmq-server, joined, on loopback ports
## 5681-5683 (CLUSTER_PORT moves them; data under CLUSTER_DIR, /tmp/orgsync-cluster); prints
## the ORGSYNC_BROKER_URL that lists them. The machine's own node on 5672 is never touched.
cluster: $(DEMO_STAMP)
	$(BIN)/python -m tests.faults.cluster start

cluster-stop: $(DEMO_STAMP)
	$(BIN)/python -m tests.faults.cluster stop

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

test-e2e: $(STAMP) prometheus
	$(BIN)/python -m pytest tests/e2e

## test-browser: the web console in Debian's chromium, driven by Playwright (~25 s)
test-browser: $(STAMP) chromium oidc-provider
	$(BIN)/python -m pytest -m browser tests/browser

## screenshots: the browser tests, keeping each page's screenshot in docs/screenshots/
screenshots: $(STAMP) chromium oidc-provider
	ORGSYNC_SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest -m browser tests/browser

## chromium: the system browser the browser tests drive (Playwright's own download is never used)
chromium:
	@test -x /usr/bin/chromium || { apt-get update && apt-get install -y chromium; } \
	  || echo "make: could not install chromium (apt-get install -y chromium, as root);" \
	    "the browser tests skip without it, and fail under CI=true"

## oidc-provider: the real OpenID Connect provider the browser tests sign in through
## (tests/oidc: panva's oidc-provider from npm, at the versions of its package-lock.json; node >= 20)
OIDC_STAMP := tests/oidc/node_modules/.package-lock.json
oidc-provider: $(OIDC_STAMP)
$(OIDC_STAMP): tests/oidc/package.json tests/oidc/package-lock.json
	@command -v npm >/dev/null || { sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y --no-install-recommends nodejs npm; }
	npm ci --prefix tests/oidc --no-audit --no-fund
	touch $(OIDC_STAMP)

## web: the web console on http://127.0.0.1:8080/ (needs ORGSYNC_WEB_PASSWORD)
web: $(DEMO_STAMP)
	$(BIN)/orgsync web
## prometheus: Debian's prometheus and promtool for tests/e2e/test_prometheus.py, installed with
## apt (sudo when not root) when missing; the service the package starts is stopped and disabled,
## the test runs a Prometheus of its own
prometheus:
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus && \
	  { $$sudo systemctl disable --now prometheus 2>/dev/null || \
	    $$sudo service prometheus stop 2>/dev/null || true; }; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check services pipelines tests benchmarks orgsync/__init__.py
	$(BIN)/ruff format --check services pipelines tests benchmarks orgsync/__init__.py

typecheck: $(STAMP)
	$(BIN)/mypy -p orgsync

migrate: $(DEMO_STAMP)
	$(BIN)/orgsync migrate

worker: $(DEMO_STAMP)
	$(BIN)/orgsync worker

## bench: orgsync at organization scale beside the bare AWS calls (BENCH_ARGS='--accounts 10000')
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/feed_bench.py $(FEED_BENCH_ARGS)

## bench-smoke: the same at a size CI can afford (~2 min, the contention phase included)
bench-smoke: $(STAMP)
	$(BIN)/python benchmarks/bench.py --smoke $(BENCH_ARGS)
	$(BIN)/python benchmarks/feed_bench.py --smoke

## bench-web: the web console's listing page at 100,000 accounts: p50 and p95 (target p95 <= 300 ms)
bench-web: $(DEMO_STAMP)
	$(BIN)/python benchmarks/web_listing.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
