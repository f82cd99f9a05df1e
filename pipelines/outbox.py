"""The transactional outbox: events are written in the same transaction as the state they follow.

A relay publishes them after the commit, a few of each organization at a time (its share, see
services/adapters/relay.py); a crash between commit and publish leaves the row for the next
relay pass, so no event is lost, and consumers are idempotent, so none is doubled. A row stays
until its consumer has finished with it: that is how the relay knows what is in flight.
An event emitted with a delay is published to its stage's delay queue and delivered once the
delay has passed, counted from the commit, however late the relay runs.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg.types.json import Jsonb

from orgsync.pipelines.events import Event
from orgsync.pipelines.sql import load

SQL = load("orgsync.pipelines")


def emit(
    conn: psycopg.Connection[dict[str, object]], events: Iterable[Event], delay_s: float = 0.0
) -> list[str]:
    """Queue `events` for publication with the current transaction; returns their message ids."""
    rows = [
        (e.message_id, e.queue, e.actor, Jsonb(e.payload()), delay_s, e.org_id, e.lane)
        for e in events
    ]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(SQL["insert_outbox_event"], rows)
    return [row[0] for row in rows]
