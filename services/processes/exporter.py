"""`orgsync exporter`: the pipeline as a whole on Prometheus' /metrics, and /healthz.

At each scrape it asks RabbitMQ (passive declares: ready, delayed and dead-lettered messages and
consumers of every queue; the management API for messages in flight, when configured) and
PostgreSQL (five named queries sent in one round trip: accounts per organization and status,
the oldest account waiting at each stage, the last sync of each organization, failed
accounts, rejected messages). It keeps one connection to each between scrapes and opens a new
one when a service went away, so it outlives restarts of both; a service that does not
answer makes `orgsync_exporter_up{service=...}` 0 and /healthz 503, never a crash.

The stage histograms and counters come from the workers themselves (services/processes/metrics.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pika
import pika.exceptions
import psycopg
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from psycopg.rows import dict_row

from orgsync.pipelines.events import STAGES
from orgsync.services.adapters import db, queues
from orgsync.services.adapters.broker import describe as describe_broker
from orgsync.services.logs import get_logger
from orgsync.services.processes.metrics import Response, prometheus_text, serve
from orgsync.services.settings import Settings

log = get_logger("orgsync.exporter")

# name -> (type, help, labels): every family the exporter can export, whether or not a scrape has
# samples for it (tests and the Grafana dashboard read the names from here)
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "orgsync_queue_messages": (
        "gauge",
        "Messages in a stage queue, by kind: ready, delayed (Q.DQ: retries and delayed "
        "messages), dead_lettered (Q.XQ), in_flight (delivered, not yet acked; with the "
        "management API only).",
        ("queue", "kind"),
    ),
    "orgsync_queue_consumers": ("gauge", "Consumers of a stage queue.", ("queue",)),
    "orgsync_accounts": (
        "gauge",
        "Accounts by organization and status (org_id '' for standalone accounts).",
        ("org_id", "org", "status"),
    ),
    "orgsync_failed_accounts": (
        "gauge",
        "Accounts whose member role failed, by organization and AWS error code.",
        ("org_id", "org", "code"),
    ),
    "orgsync_pipeline_waiting": (
        "gauge",
        "Work waiting for a stage: registration requests without a verdict, organizations "
        "whose last sync is still walking, accounts waiting for validation, harvest, reconcile.",
        ("stage",),
    ),
    "orgsync_pipeline_oldest_waiting_seconds": (
        "gauge",
        "Age of the oldest work waiting for a stage (0 when none waits): how far behind it is.",
        ("stage",),
    ),
    "orgsync_sync_last_started_timestamp_seconds": (
        "gauge",
        "When the organization's last sync started (Unix time).",
        ("org_id", "org"),
    ),
    "orgsync_sync_last_duration_seconds": (
        "gauge",
        "The last sync's duration, start to last account reconciled (so far, while it runs).",
        ("org_id", "org"),
    ),
    "orgsync_sync_last_running": (
        "gauge",
        "1 while the organization's last sync has accounts still on their way.",
        ("org_id", "org"),
    ),
    "orgsync_sync_last_complete": (
        "gauge",
        "1 when the last sync's walk of the organization was complete, 0 when it failed.",
        ("org_id", "org"),
    ),
    "orgsync_sync_last_accounts": (
        "gauge",
        "What the last sync's discovery counted: seen, imported, suspended, excluded, removed.",
        ("org_id", "org", "count"),
    ),
    "orgsync_syncs": ("counter", "Syncs started, by organization.", ("org_id", "org")),
    "orgsync_rejected_messages": (
        "counter",
        "Messages a stage could not read and recorded in rejected_messages.",
        ("queue",),
    ),
    "orgsync_aws_calls": (
        "counter",
        "AWS calls that took a token of the shared rate budget (retries after a throttle "
        "included), by organization (org_id 'service' for orgsync's own AssumeRole) and API.",
        ("org_id", "org", "api"),
    ),
    "orgsync_aws_throttled": (
        "counter",
        "AWS answers that were throttling (TooManyRequestsException, Throttling), by "
        "organization and API: each lowered the budget or was counted against its last decrease.",
        ("org_id", "org", "api"),
    ),
    "orgsync_aws_budget_rate": (
        "gauge",
        "The shared rate budget's current rate, in calls per second, by organization and API.",
        ("org_id", "org", "api"),
    ),
    "orgsync_exporter_up": (
        "gauge",
        "1 when the service (postgresql, rabbitmq, rabbitmq_management) answered this scrape.",
        ("service",),
    ),
    "orgsync_exporter_scrape_duration_seconds": (
        "gauge",
        "Time this scrape spent on each service.",
        ("service",),
    ),
}

ACCOUNTS = """
SELECT coalesce(c.org_id, '') AS org_id, coalesce(o.nickname, '') AS org, c.status, c.n
FROM (SELECT org_id, status, count(*) AS n FROM accounts GROUP BY org_id, status) c
LEFT JOIN organizations o USING (org_id)
"""

# accounts.stage is the last stage an account passed in its sync: it waits for the next one
# (STAGES' waits_at); requests without a verdict wait for registration, unwalked syncs for
# discovery
WAITING = """
SELECT 'registration' AS waits_at, count(*) AS n,
       coalesce(extract(epoch FROM now() - min(received_at)), 0) AS oldest
FROM registrations WHERE decided_at IS NULL
UNION ALL
SELECT 'discovery', count(*), coalesce(extract(epoch FROM now() - min(started_at)), 0)
FROM (SELECT DISTINCT ON (org_id) started_at, walked_at FROM syncs
      ORDER BY org_id, started_at DESC) last
WHERE walked_at IS NULL
UNION ALL
SELECT stage, count(*), extract(epoch FROM now() - min(stage_at))
FROM accounts WHERE stage <> 'reconciled'
GROUP BY stage
"""
WAITING_STAGE = {s.waits_at or s.name: s.name for s in STAGES}

# pending: one pass over the partial index accounts_stage (only accounts on their way);
# last_at: the index accounts_sync_stage_at
LAST_SYNCS = """
SELECT o.org_id, o.nickname AS org, extract(epoch FROM s.started_at) AS started,
       s.complete, s.counts, coalesce(p.pending, 0) AS pending,
       extract(epoch FROM CASE WHEN s.walked_at IS NULL OR p.pending > 0 THEN now()
                               ELSE greatest(s.walked_at, l.last_at) END - s.started_at)
           AS duration,
       (SELECT count(*) FROM syncs x WHERE x.org_id = o.org_id) AS syncs
FROM organizations o
JOIN LATERAL (SELECT * FROM syncs s WHERE s.org_id = o.org_id
              ORDER BY started_at DESC LIMIT 1) s ON true
LEFT JOIN (SELECT sync_id, count(*) AS pending FROM accounts WHERE stage <> 'reconciled'
           GROUP BY sync_id) p ON p.sync_id = s.sync_id
JOIN LATERAL (SELECT max(a.stage_at) AS last_at FROM accounts a
              WHERE a.sync_id = s.sync_id) l ON true
"""

FAILED = """
SELECT coalesce(f.org_id, '') AS org_id, coalesce(o.nickname, '') AS org, f.code, count(*) AS n
FROM failures f JOIN accounts a USING (account_id) LEFT JOIN organizations o ON o.org_id = f.org_id
WHERE a.status = 'assume_role_failed'
GROUP BY 1, 2, 3
"""

REJECTED = "SELECT queue_name AS queue, count(*) AS n FROM rejected_messages GROUP BY 1"

BUDGETS = """
SELECT b.scope AS org_id, coalesce(o.nickname, '') AS org, b.api, b.calls, b.throttled, b.rate
FROM aws_budgets b LEFT JOIN organizations o ON o.org_id = b.scope
"""

QUERIES = {
    "accounts": ACCOUNTS,
    "waiting": WAITING,
    "last_syncs": LAST_SYNCS,
    "failed": FAILED,
    "rejected": REJECTED,
    "budgets": BUDGETS,
}


Family = GaugeMetricFamily | CounterMetricFamily


def family(name: str) -> Family:
    kind, help_text, labels = FAMILIES[name]
    if kind == "counter":
        return CounterMetricFamily(name, help_text, labels=labels)
    return GaugeMetricFamily(name, help_text, labels=labels)


@dataclass
class ScrapeCost:
    """What the last scrape did: for `benchmarks/scrape_cost.py` and the logs."""

    seconds: dict[str, float] = field(default_factory=dict)
    sql_queries: int = 0
    sql_round_trips: int = 0
    amqp_calls: int = 0
    http_requests: int = 0


class Exporter:
    """A prometheus_client collector; one scrape at a time, connections kept between them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.conn: psycopg.Connection[dict[str, Any]] | None = None
        self.amqp: pika.BlockingConnection | None = None
        self.cost = ScrapeCost()

    # ---- the services, reopened when they went away ------------------------------------------

    def _database(self) -> psycopg.Connection[dict[str, Any]]:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.close_database()
            self.conn = psycopg.connect(
                self.settings.database_url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=3,
                options="-c statement_timeout=10000",
            )
        return self.conn

    def _broker(self) -> pika.BlockingConnection:
        if self.amqp is None or not self.amqp.is_open:
            self.close_broker()
            params = pika.URLParameters(self.settings.broker_url)
            params.socket_timeout = 3
            params.stack_timeout = 5
            params.connection_attempts = 1
            self.amqp = pika.BlockingConnection(params)
        return self.amqp

    def close_database(self) -> None:
        if self.conn is not None and not self.conn.closed:
            self.conn.close()
        self.conn = None

    def close_broker(self) -> None:
        if self.amqp is not None and self.amqp.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                self.amqp.close()
        self.amqp = None

    def close(self) -> None:
        with self.lock:
            self.close_database()
            self.close_broker()

    def _query(self) -> dict[str, list[dict[str, Any]]]:
        """Every query in one round trip (pipeline mode)."""

        def query() -> dict[str, list[dict[str, Any]]]:
            conn = self._database()
            with conn.pipeline():
                cursors = {name: conn.execute(sql) for name, sql in QUERIES.items()}
            self.cost.sql_queries += len(QUERIES)
            self.cost.sql_round_trips += 1
            return {name: cursor.fetchall() for name, cursor in cursors.items()}

        return twice(query, self.close_database, psycopg.OperationalError)

    def _depths(self) -> list[dict[str, Any]]:
        def depths() -> list[dict[str, Any]]:
            rows = queues.count(self._broker())
            self.cost.amqp_calls += 3 * len(rows)
            return rows

        return twice(depths, self.close_broker, BROKER_ERRORS)

    # ---- the collector -------------------------------------------------------------------

    def describe(self) -> list[Metric]:
        return [family(name) for name in FAMILIES]

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            yield from self._collect()

    def _collect(self) -> Iterator[Metric]:
        self.cost = ScrapeCost()
        out = {name: family(name) for name in FAMILIES}
        up, took = out["orgsync_exporter_up"], out["orgsync_exporter_scrape_duration_seconds"]

        started = time.perf_counter()
        try:
            rows = self._depths()
        except BROKER_ERRORS as error:
            log.warning("exporter_rabbitmq_unavailable", error=str(error) or type(error).__name__)
            up.add_metric(["rabbitmq"], 0)
        else:
            up.add_metric(["rabbitmq"], 1)
            management = self.settings.rabbitmq_management_url
            if management:
                answered = queues.add_management(rows, self.settings.broker_url, management)
                self.cost.http_requests += 1
                up.add_metric(["rabbitmq_management"], int(answered))
            for row in rows:
                for kind in ("ready", "delayed", "dead_lettered", "in_flight"):
                    if row.get(kind) is not None:
                        out["orgsync_queue_messages"].add_metric([row["queue"], kind], row[kind])
                out["orgsync_queue_consumers"].add_metric([row["queue"]], row["consumers"])
        self.cost.seconds["rabbitmq"] = time.perf_counter() - started
        took.add_metric(["rabbitmq"], self.cost.seconds["rabbitmq"])

        started = time.perf_counter()
        try:
            results = self._query()
        except psycopg.Error as error:
            log.warning("exporter_postgresql_unavailable", error=str(error).strip()[:300])
            up.add_metric(["postgresql"], 0)
        else:
            up.add_metric(["postgresql"], 1)
            add_database(out, results)
        self.cost.seconds["postgresql"] = time.perf_counter() - started
        took.add_metric(["postgresql"], self.cost.seconds["postgresql"])
        yield from out.values()

    # ---- /healthz ------------------------------------------------------------------------

    def health(self) -> dict[str, str]:
        """'ok' or why not, for each service."""
        with self.lock:
            status = {"postgresql": "ok", "rabbitmq": "ok"}
            try:
                twice(self._ping_database, self.close_database, psycopg.Error)
            except psycopg.Error as error:
                self.close_database()
                status["postgresql"] = str(db.unavailable(self.settings.database_url, error))
            try:
                twice(self._ping_broker, self.close_broker, BROKER_ERRORS)
            except BROKER_ERRORS as error:
                self.close_broker()
                status["rabbitmq"] = (
                    f"RabbitMQ at {describe_broker(self.settings.broker_url)} is unreachable"
                    f" ({str(error) or type(error).__name__})"
                )
            return status

    def _ping_database(self) -> None:
        self._database().execute("SELECT 1").fetchone()

    def _ping_broker(self) -> None:
        channel = self._broker().channel()
        channel.exchange_declare("amq.direct", passive=True)  # in every vhost: a round trip
        channel.close()


T = TypeVar("T")
BROKER_ERRORS = (pika.exceptions.AMQPError, OSError)


def twice(action: Callable[[], T], reset: Callable[[], None], errors: Any) -> T:
    """`action()`; once more on new connections when a kept one had gone away."""
    try:
        return action()
    except errors:
        reset()
        return action()


def add_database(out: dict[str, Family], results: dict[str, list[dict[str, Any]]]) -> None:
    for row in results["accounts"]:
        out["orgsync_accounts"].add_metric([row["org_id"], row["org"], row["status"]], row["n"])
    for row in results["failed"]:
        labels = [row["org_id"], row["org"], row["code"]]
        out["orgsync_failed_accounts"].add_metric(labels, row["n"])
    waiting = {stage.name: (0, 0.0) for stage in STAGES}
    waiting |= {
        WAITING_STAGE.get(row["waits_at"], row["waits_at"]): (row["n"], float(row["oldest"]))
        for row in results["waiting"]
    }
    for stage, (n, oldest) in waiting.items():
        out["orgsync_pipeline_waiting"].add_metric([stage], n)
        out["orgsync_pipeline_oldest_waiting_seconds"].add_metric([stage], oldest)
    for row in results["last_syncs"]:
        org = [row["org_id"], row["org"]]
        out["orgsync_sync_last_started_timestamp_seconds"].add_metric(org, float(row["started"]))
        out["orgsync_sync_last_duration_seconds"].add_metric(org, float(row["duration"]))
        running = row["complete"] is None or row["pending"] > 0
        out["orgsync_sync_last_running"].add_metric(org, int(running))
        if row["complete"] is not None:
            out["orgsync_sync_last_complete"].add_metric(org, int(row["complete"]))
        for name, value in (row["counts"] or {}).items():
            total = sum(value.values()) if isinstance(value, dict) else value
            out["orgsync_sync_last_accounts"].add_metric([*org, name], total)
        out["orgsync_syncs"].add_metric(org, row["syncs"])
    for row in results["rejected"]:
        out["orgsync_rejected_messages"].add_metric([row["queue"]], row["n"])
    for row in results["budgets"]:
        labels = [row["org_id"], row["org"], row["api"]]
        out["orgsync_aws_calls"].add_metric(labels, row["calls"])
        out["orgsync_aws_throttled"].add_metric(labels, row["throttled"])
        out["orgsync_aws_budget_rate"].add_metric(labels, row["rate"])


def make_server(settings: Settings, host: str, port: int) -> tuple[Any, Exporter]:
    """The HTTP server (not started) and its exporter."""
    exporter = Exporter(settings)
    registry = CollectorRegistry()
    registry.register(exporter)

    def healthz() -> Response:
        status = exporter.health()
        healthy = all(value == "ok" for value in status.values())
        body = json.dumps({"ok": healthy, **status}).encode() + b"\n"
        return (200 if healthy else 503), "application/json", body

    routes = {"/metrics": lambda: prometheus_text(registry), "/healthz": healthz}
    return serve(host, port, routes), exporter


def run(settings: Settings, host: str, port: int, stop: threading.Event) -> None:
    # a passive declare of a queue no worker has declared yet is an answer, not a warning
    logging.getLogger("pika.channel").setLevel(logging.ERROR)
    server, exporter = make_server(settings, host, port)
    log.info("exporter", address=f"http://{host}:{server.server_port}/metrics")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        exporter.close()
