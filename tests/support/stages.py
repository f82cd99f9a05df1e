"""A stage function's dependencies on the test's database, and the events it left in the outbox."""

from __future__ import annotations

from typing import Any

import psycopg

from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.events import STAGE_BY_QUEUE, Event
from orgsync.pipelines.stage import Deps
from orgsync.services.adapters import db


def stage_deps(conn: psycopg.Connection[Any], keyring: Keyring, **clients: Any) -> Deps:
    """What a stage function needs, on the test's database: each read or write on a connection
    of its own, committed at the end of its block; no relay, so the events stay in the outbox."""
    clients.setdefault("organizations", lambda org: None)
    clients.setdefault("sts", None)
    return Deps(connect=lambda: db.connect(conn.info.dsn), keyring=keyring, **clients)


def outbox_events(conn: psycopg.Connection[Any]) -> list[Event]:
    """The events waiting in the outbox, oldest first."""
    rows = conn.execute("SELECT queue_name, payload FROM outbox ORDER BY id").fetchall()
    events = []
    for row in rows:
        kind = STAGE_BY_QUEUE[row["queue_name"]].event
        assert kind is not None
        events.append(kind.from_payload(row["payload"]))
    return events
