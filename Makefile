# The few targets the README names. Each creates the virtual environment when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit test-integration test-e2e lint typecheck worker migrate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## demo: the whole pipeline on an embedded simulated AWS organization (needs local PostgreSQL and RabbitMQ)
demo: $(STAMP)
	$(BIN)/orgsync migrate
	$(BIN)/orgsync demo

## test: lint, type checks, then unit, integration and end-to-end tests
test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

test-e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check services pipelines tests

typecheck: $(STAMP)
	$(BIN)/mypy pipelines

migrate: $(STAMP)
	$(BIN)/orgsync migrate

worker: $(STAMP)
	$(BIN)/orgsync worker

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
