"""The exporter's PostgreSQL side: nine named reads sent in one round trip, and their families.

Accounts per organization and status, the oldest work waiting at each stage, the last sync of
each organization, failed accounts, rejected messages, the rate budgets, the pages each
organization has held or in flight in the outbox, and the events for other systems: webhook
deliveries by state and the events not yet on the exchange. One connection is kept between
scrapes and opened again when it went away.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from orgsync.pipelines.events import STAGES
from orgsync.pipelines.sql import load
from orgsync.services.processes.exporter.families import Family
from orgsync.services.read_models import dispatch

SQL = load("orgsync.services.processes")
# a scrape's reads, by the name their rows go under (benchmarks/scrape_cost.py times each)
QUERIES = {
    "accounts": SQL["exporter_accounts"],
    "waiting": SQL["exporter_waiting"],
    "last_syncs": SQL["exporter_last_syncs"],
    "failed": SQL["exporter_failed_accounts"],
    "rejected": SQL["exporter_rejected_messages"],
    "budgets": SQL["exporter_budgets"],
    "pages": dispatch.SHARES,  # the same read as `orgsync queues` and the Pipeline page
    "webhooks": SQL["exporter_webhooks"],
    "unpublished": SQL["exporter_events_unpublished"],
}
PARAMS = {"pages": {"scope": None}}  # every organization's
WAITING_STAGE = {s.waits_at or s.name: s.name for s in STAGES}


def waiting_stage(mark: str) -> str:
    """The stage whose messages wait at `mark`; a mark no stage names stands for itself."""
    return WAITING_STAGE.get(mark, mark)


Rows = dict[str, list[dict[str, Any]]]


class Database:
    """The exporter's connection to PostgreSQL, kept between scrapes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: psycopg.Connection[dict[str, Any]] | None = None

    def connection(self) -> psycopg.Connection[dict[str, Any]]:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.close()
            self.conn = psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=3,
                options="-c statement_timeout=10000",
            )
        return self.conn

    def close(self) -> None:
        if self.conn is not None and not self.conn.closed:
            self.conn.close()
        self.conn = None

    def read(self) -> Rows:
        """Every query in one round trip (pipeline mode)."""
        conn = self.connection()
        with conn.pipeline():
            cursors = {name: conn.execute(sql, PARAMS.get(name)) for name, sql in QUERIES.items()}
        return {name: cursor.fetchall() for name, cursor in cursors.items()}

    def ping(self) -> None:
        self.connection().execute(SQL["exporter_ping"]).fetchone()


def add_database(out: dict[str, Family], results: Rows) -> None:
    for row in results["accounts"]:
        out["orgsync_accounts"].add_metric([row["org_id"], row["org"], row["status"]], row["n"])
    for row in results["failed"]:
        labels = [row["org_id"], row["org"], row["code"]]
        out["orgsync_failed_accounts"].add_metric(labels, row["n"])
    waiting = {stage.name: (0, 0.0) for stage in STAGES}
    waiting |= {
        waiting_stage(row["waits_at"]): (row["n"], float(row["oldest"]))
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
    for row in results["pages"]:
        labels = [row["org_id"], row["org"], row["queue"], row["lane"]]
        out["orgsync_pages_waiting"].add_metric(labels, row["held"])
        out["orgsync_pages_in_flight"].add_metric(labels, row["in_flight"])
    add_webhooks(out, results)


def add_webhooks(out: dict[str, Family], results: Rows) -> None:
    oldest: dict[str, float] = {}
    for row in results["webhooks"]:
        oldest[row["webhook_id"]] = max(oldest.get(row["webhook_id"], 0.0), float(row["oldest"]))
        if row["state"] is not None:
            out["orgsync_webhook_deliveries"].add_metric(
                [row["webhook_id"], row["state"]], row["n"]
            )
    for webhook_id, seconds in oldest.items():
        out["orgsync_webhook_oldest_pending_seconds"].add_metric([webhook_id], seconds)
    for row in results["unpublished"]:
        out["orgsync_events_unpublished"].add_metric([], row["n"])
