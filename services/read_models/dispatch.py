"""Fair dispatch as the people who watch queue depth see it.

Of one organization's pages for one queue and lane, only a share is in RabbitMQ at a time
(services/adapters/relay.py); the rest wait in the outbox, held. RabbitMQ's depth no longer
shows a big organization's backlog, so `orgsync queues`, the console's Pipeline page and the
exporter add what the outbox holds: per stage queue, and per organization, queue and lane.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg

from orgsync.pipelines.sql import load
from orgsync.services.adapters import queues
from orgsync.services.errors import ServiceUnavailable

if TYPE_CHECKING:
    from orgsync.services.bootstrap import House

Conn = psycopg.Connection[dict[str, Any]]
SQL = load("orgsync.services.read_models")
# the exporter sends it with its other reads, in one round trip
SHARES = SQL["outbox_shares"]


def shares(conn: Conn, scope: list[str] | None = None) -> list[dict[str, Any]]:
    """`{org_id, org, queue, lane, held, in_flight}` per organization (of `scope`; None: all),
    queue and lane with pages in the outbox, largest first."""
    return conn.execute(SHARES, {"scope": scope}).fetchall()


def queue_depths(house: House) -> tuple[list[dict[str, Any]], str]:
    """Each stage queue's depth in RabbitMQ and in the outbox (`orgsync queues --json`), and
    why the outbox was not counted ('' when it was). RabbitMQ unreachable raises
    ServiceUnavailable, as `queues.depths` does."""
    settings = house.settings
    rows = queues.depths(settings.broker_url, settings.rabbitmq_management_url)
    try:
        with house.connect() as conn:
            waiting = shares(conn)
    except (ServiceUnavailable, psycopg.Error) as error:
        queues.add_outbox(rows, None)
        return rows, f"pages waiting in PostgreSQL not counted: {str(error).strip()[:300]}"
    queues.add_outbox(rows, waiting)
    return rows, ""
