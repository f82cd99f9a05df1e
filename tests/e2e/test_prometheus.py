"""The Grafana dashboard, evaluated by a real Prometheus while a 300-account organization syncs.

Prometheus (Debian's `prometheus` package) runs on a free loopback port with the repository's
own deploy/prometheus configuration: the same jobs, relabelling and rule files, only the
targets pointed at this test's `orgsync exporter`, its two `orgsync worker` invocations and
RabbitMQ's `rabbitmq_prometheus` plugin, scraped every second. Every query of every panel is
sent to Prometheus's HTTP API as Grafana would send it (template variables filled in), during
the sync and after the test has forced the cases a healthy run never shows (dead letters,
delayed messages, unreadable messages, a second sync).

Discovery runs first with no validator, so `account-discovered` fills up; validators then start
and drain it, so the queue-depth panels rise above zero and fall back to it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pika
import psycopg
import pytest
import yaml

from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import OrgSpec, build_organization
from orgsync.services.use_cases import registering, syncs
from tests.support.cli import orgsync, request_for
from tests.support.services import IN_CI, unavailable
from tests.support.waiting import wait_until
from tests.support.workers import worker_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "orgsync.json"
RABBITMQ_PROMETHEUS = os.environ.get("ORGSYNC_TEST_RABBITMQ_PROMETHEUS", "127.0.0.1:15692")

ACCOUNTS = 300
DENIED = 3  # member roles AWS refuses: the failed-roles panel
THROTTLED = 2  # member roles failing (HTTP 500) all 5 of botocore's attempts: tried again in a page
LATENCY_MS = 60  # per simulated AWS call, so the drain lasts long enough to watch
SCRAPE_SECONDS = 1
HELD_BACK = 2  # discovery's pages in flight at once (ORGSYNC_PAGES_IN_FLIGHT): 300 accounts make 6+
TIMEOUT = 90

# The panels (title/refId) a healthy sync leaves empty or at zero, and why. The test forces
# each case afterwards and then requires data from every one of them.
QUIET = {
    "Delayed (retries waiting in Q.DQ)/A": "dramatiq's consumer takes a retry out of Q.DQ at "
    "once and holds it unacked until it is due; only the management API (not enabled on the "
    "shared RabbitMQ) shows those, a passive declare counts 0; forced: a message put into "
    "account-validated.DQ with no worker running",
    "Dead letters (Q.XQ)/A": "nothing is dead-lettered in a healthy run; forced: a message "
    "rejected without requeue, as dramatiq does when its retries run out",
    "RabbitMQ: dead-lettered and received per second/A": "the same dead letter, as RabbitMQ "
    "counts it",
    "Retries and failures per second/A": "a failing validation goes round again as a page "
    "of its own, not as a dramatiq retry, so a healthy sync retries, fails and skips nothing; "
    "forced: an unreadable message, recorded and skipped",
    "Rejected messages/A": "nothing unreadable arrives in a healthy run; forced: a body that is "
    "not JSON on tags-harvested",
    "AWS calls and throttled answers per second/B": "the simulated AWS throttles nothing in a "
    "healthy run; forced: AssumeRole throttled twice for the account retried",
    "Syncs started per hour/A": "increase() cannot see a counter's first sample, so an "
    "organization's first sync counts 0; forced: a second sync",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def answers(url: str) -> bool:
    try:
        http_get(url, timeout=3)
    except (OSError, urllib.error.URLError):
        return False
    return True


# ---- the dashboard -------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    panel: str
    ref: str
    expr: str

    @property
    def name(self) -> str:
        return f"{self.panel}/{self.ref}"


def panels(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in node.get("panels", []):
        yield panel
        yield from panels(panel)


def grafana_variables(dashboard: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    """What Grafana puts in place of the variables: the dashboard's own (every one must be
    given) and the built-ins, for a Prometheus data source scraped every SCRAPE_SECONDS."""
    declared = {variable["name"] for variable in dashboard.get("templating", {}).get("list", [])}
    assert declared == set(values), f"the dashboard's variables are {sorted(declared)}"
    interval = SCRAPE_SECONDS  # Grafana's $__interval never goes below the scrape interval
    # Grafana: $__rate_interval = max($__interval + scrape interval, 4 * scrape interval)
    rate_interval = max(interval + SCRAPE_SECONDS, 4 * SCRAPE_SECONDS)
    return {
        **values,
        "__rate_interval": f"{rate_interval}s",
        "__interval": f"{interval}s",
        "__range": "1h",
    }


def fill(expr: str, variables: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        assert name in variables, f"unknown variable {name!r} in {expr}"
        return variables[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", value, expr)


def label_values_queries(dashboard: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """variable -> (metric, label) of the dashboard's `label_values(metric, label)` variables."""
    found = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        if match := re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", text.strip()):
            found[variable["name"]] = (match.group(1), match.group(2))
    return found


def dashboard_queries(variables: dict[str, str]) -> list[Query]:
    dashboard = json.loads(DASHBOARD.read_text())
    filled = grafana_variables(dashboard, variables)
    queries = [
        Query(panel["title"], target["refId"], fill(target["expr"], filled))
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]
    assert len({q.name for q in queries}) == len(queries), "panel titles and refIds repeat"
    return queries


# ---- Prometheus ----------------------------------------------------------------------------


def scrape_config(targets: dict[str, list[str]], rule_dir: Path) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with its targets on loopback and a 1 s interval."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(targets), f"deploy/prometheus has jobs {sorted(jobs)}"
    for name, job in jobs.items():
        for discovery in [key for key in job if key.endswith("_sd_configs")]:
            del job[discovery]
        job["static_configs"] = [{"targets": targets[name]}]
    config["global"] |= {
        "scrape_interval": f"{SCRAPE_SECONDS}s",
        "evaluation_interval": f"{SCRAPE_SECONDS}s",
    }
    config["rule_files"] = [str(rule_dir / path) for path in config.get("rule_files", [])]
    return config


class Prometheus:
    """A Prometheus server of this test's own; `query` and `query_range` are its HTTP API."""

    def __init__(self, binary: str, config: dict[str, Any], directory: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = directory / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log = directory / "prometheus.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def ready(self) -> bool:
        assert self.process.poll() is None, f"prometheus exited: {self.log.read_text()[-2000:]}"
        return answers(f"{self.url}/-/ready")

    def api(self, path: str, **params: Any) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            body = json.loads(http_get(url, timeout=30))
        except urllib.error.HTTPError as error:
            body = json.loads(error.read())
        assert body["status"] == "success", f"{path} {params}: {body.get('error')}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", f"{expr} gives a {data['resultType']}"
        return list(data["result"])

    def query_range(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        data = self.api("query_range", query=expr, start=start, end=end, step=SCRAPE_SECONDS)
        return list(data["result"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def values(series: list[dict[str, Any]]) -> list[float]:
    """Every finite value of an instant or range result (NaN: a quantile with no data)."""
    found = []
    for one in series:
        for _, value in one.get("values", [one.get("value", [0, "NaN"])]):
            if math.isfinite(float(value)):
                found.append(float(value))
    return found


def by_label(series: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {one["metric"].get(label, ""): float(one["value"][1]) for one in series}


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None or shutil.which("promtool") is None:
        message = "Prometheus is not installed (apt-get install prometheus; .ci/run does it)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def rabbitmq_prometheus(rabbitmq_server: tuple[str, Any]) -> str:
    """RabbitMQ's Prometheus endpoint, the plugin enabled first when it is off."""
    url = f"http://{RABBITMQ_PROMETHEUS}/metrics"
    if not answers(url):
        if shutil.which("rabbitmq-plugins") is None:
            unavailable(f"rabbitmq_prometheus on {url}", RuntimeError("no rabbitmq-plugins"))
        enabled = subprocess.run(
            ["rabbitmq-plugins", "enable", "rabbitmq_prometheus"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if enabled.returncode != 0:
            unavailable("RabbitMQ's rabbitmq_prometheus plugin", RuntimeError(enabled.stderr))
        wait_until(lambda: answers(url), 60, f"rabbitmq_prometheus on {url}")
    return RABBITMQ_PROMETHEUS


@pytest.fixture
def own_settings(settings: Settings, own_broker_url: str) -> Settings:
    """A vhost of the test's own: what it forces into queues stays out of other tests' way."""
    return dataclasses.replace(settings, broker_url=own_broker_url)


class Processes:
    """The exporter and the workers, in subprocesses logging to the test's directory."""

    def __init__(self, settings: Settings, aws: SimulatedAws, logs: Path) -> None:
        self.env = worker_env(settings, aws.endpoint_url)
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str, **env: str) -> None:
        with (self.logs / f"{name}.log").open("w") as out:
            self.running[name] = subprocess.Popen(
                [sys.executable, "-m", "orgsync", *args],
                env=dict(self.env, **env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def worker(self, name: str, stages: str, port: int, **env: str) -> None:
        self.start(
            name,
            *("worker", "--stages", stages, "--processes", "1", "--threads", "4"),
            ORGSYNC_WORKER_METRICS_PORT=str(port),
            **env,
        )

    def stop(self, *names: str) -> None:
        for name in names or list(self.running):
            self.running[name].terminate()
        for name in names or list(self.running):
            process = self.running.pop(name)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# ---- the test ------------------------------------------------------------------------------


@pytest.fixture
def own_house(own_settings: Settings) -> Iterator[House]:
    with House(own_settings) as house:
        yield house


def test_every_dashboard_query_answers_on_a_real_prometheus_while_300_accounts_sync(
    prometheus_binary: str,
    rabbitmq_prometheus: str,
    own_settings: Settings,
    own_house: House,
    aws: SimulatedAws,
    tmp_path: Path,
) -> None:
    settings, house = own_settings, own_house
    vhost = unquote(urlsplit(settings.broker_url).path.lstrip("/"))
    variables = {"vhost": vhost}  # the dashboard's variables, as the operator would pick them
    queries = dashboard_queries(variables)

    def query(name: str) -> Query:
        (found,) = [q for q in queries if q.name == name]
        return found

    # the rule files load, and their unit tests (each alert on its case) pass
    promtool = subprocess.run(
        ["promtool", "check", "config", str(DEPLOY / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert promtool.returncode == 0, promtool.stdout + promtool.stderr
    rule_tests = sorted(DEPLOY.glob("*.test.yml"))
    tested = subprocess.run(
        ["promtool", "test", "rules", *map(str, rule_tests)], capture_output=True, text=True
    )
    assert rule_tests and tested.returncode == 0, tested.stdout + tested.stderr

    org = build_organization(
        aws.endpoint_url, OrgSpec(accounts=ACCOUNTS, suspended=0, excluded=0, seed=19)
    )
    members = [a.id for a in org.accounts if a.id != org.management_account_id]
    denied, throttled = members[:DENIED], members[DENIED : DENIED + THROTTLED]
    aws.faults.update(
        latency_ms=LATENCY_MS,
        deny_assume_role=denied,
        fail_assume_role=dict.fromkeys(throttled, 5),  # all 5 of botocore's attempts
    )

    exporter_port, front_port, back_port = free_port(), free_port(), free_port()
    processes = Processes(settings, aws, tmp_path)
    prometheus = Prometheus(
        prometheus_binary,
        scrape_config(
            {
                "orgsync-exporter": [f"127.0.0.1:{exporter_port}"],
                "orgsync-workers": [f"127.0.0.1:{front_port}", f"127.0.0.1:{back_port}"],
                "rabbitmq": [rabbitmq_prometheus],
            },
            DEPLOY,
        ),
        tmp_path,
    )
    try:
        processes.start("exporter", "exporter", "--host", "127.0.0.1", "--port", str(exporter_port))
        # discovery sends 2 pages of the organization at a time and holds the rest in the
        # outbox until the validators come: the pages-waiting panels see them
        processes.worker(
            "front", "registration,discovery", front_port, ORGSYNC_PAGES_IN_FLIGHT=str(HELD_BACK)
        )
        wait_until(prometheus.ready, 60, "Prometheus ready")
        rules = prometheus.api("rules")["groups"]
        assert rules and all(rule["health"] != "err" for g in rules for rule in g["rules"]), rules

        def depth_panel() -> dict[str, float]:
            return by_label(
                prometheus.query(query("Queue depth (ready and in flight)/A").expr), "queue"
            )

        request = request_for(org, "dashboard")
        registering.submit(house, request)
        verdict = registering.wait_verdict(house, request["request_id"], TIMEOUT)
        assert verdict.accepted and verdict.org_id is not None
        sync_id = syncs.latest_sync(house, verdict.org_id)
        assert sync_id is not None
        started = time.time()

        # with no validator, account-discovered fills; the panel sees it rise
        wait_until(lambda: depth_panel().get("account-discovered", 0) > 0, TIMEOUT, "depth > 0")
        processes.worker("back", "validation,harvest,reconcile", back_port)

        # mid-sync: validators at work, the queue not yet drained
        def draining() -> bool:
            progress = syncs.progress(house, sync_id)["stages"]
            return progress.get("reconciled", 0) >= ACCOUNTS // 3

        wait_until(draining, TIMEOUT, "a third of the accounts reconciled")
        mid_sync = {q.name: prometheus.query(q.expr) for q in queries}
        still = syncs.progress(house, sync_id)["stages"]
        assert sum(n for stage, n in still.items() if stage != "reconciled") > 0, (
            "the sync ended before the mid-sync evaluation: raise LATENCY_MS"
        )

        syncs.wait_sync(house, sync_id, TIMEOUT)
        ended = time.time()
        # ... and falls back to zero, in orgsync's view and in RabbitMQ's
        wait_until(lambda: not any(depth_panel().values()), 30, "every queue depth back to 0")
        unacked = query("RabbitMQ: unacked per queue (broker view)/A")
        wait_until(lambda: not any(values(prometheus.query(unacked.expr))), 30, "unacked 0")

        # the accounts-by-status panel says what `orgsync accounts --json` lists
        listed = Counter(a["status"] for a in orgsync(settings, aws, "accounts", "--json"))
        assert listed["assume_role_failed"] == DENIED and listed["ok"] == ACCOUNTS + 1 - DENIED
        by_status = query("Accounts by status/A")
        wait_until(
            lambda: by_label(prometheus.query(by_status.expr), "status") == listed,
            10,
            f"Accounts by status == {dict(listed)}",
        )
        during = {q.name: prometheus.query_range(q.expr, started, ended) for q in queries}
        # each variable's value is one the dashboard's own variable query offers
        dashboard = json.loads(DASHBOARD.read_text())
        for variable, (metric, label) in label_values_queries(dashboard).items():
            offered = prometheus.api(f"label/{label}/values", **{"match[]": metric})
            assert variables[variable] in offered, f"${variable} offers {offered}"
        assert max(values(during[unacked.name])) > 0, "RabbitMQ never saw a message unacked"

        # the cases a healthy run never shows: first those the workers must see
        forced_at = time.time()

        def still_quiet(names: list[str]) -> list[str]:
            now = time.time()
            return [
                name
                for name in names
                if not any(values(prometheus.query_range(query(name).expr, forced_at, now)))
            ]

        def wait_for_data(names: list[str]) -> None:
            # a range query per panel: poll at the pace of Prometheus' scrapes, not faster
            wait_until(
                lambda: not still_quiet(names), 45, f"data after forcing in {names}", interval=0.5
            )

        force_with_workers(settings, aws, denied[0])
        # the throttled AssumeRole comes on the page's next try, after the retry the first
        # panel shows: the workers must still be running then
        throttled = "AWS calls and throttled answers per second/B"
        wait_for_data(["Retries and failures per second/A", "Rejected messages/A", throttled])
        processes.stop("front", "back")
        force_without_workers(settings, house)
        wait_for_data(list(QUIET))
        after = {
            name: prometheus.query_range(query(name).expr, forced_at, time.time()) for name in QUIET
        }

        # the two alerts those cases are for have matched (they fire after their `for:`)
        def alerting() -> set[str]:
            return {
                alert["labels"]["alertname"]
                for alert in prometheus.api("alerts")["alerts"]
                if alert["state"] in ("pending", "firing")
            }

        wait_until(
            lambda: {"OrgsyncDeadLetters", "OrgsyncConsumersAtZero"} <= alerting(),
            30,
            "dead-letter and consumer alerts pending",
        )
        groups = prometheus.api("rules")["groups"]
        health = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
        assert set(health.values()) == {"ok"}, health
    finally:
        processes.stop()
        prometheus.stop()

    report = {q.name: len(mid_sync[q.name]) for q in queries}
    print("\nseries per dashboard query, mid-sync:")
    for name, count in report.items():
        print(f"  {count:3d}  {name}")
    print("quiet in a healthy run, after forcing (highest value):")
    for name, series in after.items():
        print(f"  {max(values(series)):g}  {name}")
    empty = {name for name, count in report.items() if not count} - set(QUIET)
    assert not empty, f"no series mid-sync: {sorted(empty)}"
    silent = {q.name for q in queries if not any(values(during[q.name]))} - set(QUIET)
    assert not silent, f"only zeros or nothing during the sync: {sorted(silent)}"


def force_with_workers(settings: Settings, aws: SimulatedAws, account_id: str) -> None:
    """An unreadable message, and a validation retried because AWS failed it (a throttled one
    waits on the rate budget instead)."""
    connection = pika.BlockingConnection(pika.URLParameters(settings.broker_url))
    connection.channel().basic_publish("", "tags-harvested", b"this is not JSON")
    connection.close()
    # all 5 of botocore's attempts fail; the page's next try is throttled twice (budget waits)
    aws.faults.update(fail_assume_role={account_id: 5}, throttle_assume_role={account_id: 2})
    assert orgsync(settings, aws, "retry-failed", "--account", account_id, "--json")


def force_without_workers(settings: Settings, house: House) -> None:
    """A delayed message, a dead letter and a second sync."""
    connection = pika.BlockingConnection(pika.URLParameters(settings.broker_url))
    channel = connection.channel()
    channel.basic_publish("", "account-validated.DQ", b"{}")
    # what dramatiq does when a message's retries are spent: reject it, and RabbitMQ moves it
    # to the queue's dead-letter queue (x-dead-letter-routing-key Q.XQ)
    channel.basic_publish("", "account-discovered", b"{}")
    method = wait_until(lambda: channel.basic_get("account-discovered")[0], 10, "basic_get")
    channel.basic_reject(method.delivery_tag, requeue=False)
    connection.close()
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT org_id FROM organizations").fetchone()
    assert row is not None
    syncs.sync(house, row[0])
