"""Queue depth over plain AMQP: a passive declare works on any RabbitMQ, plugins or not.

Passive declares count ready messages only; messages in flight (delivered, not yet acked)
need RabbitMQ's management API, used when ORGSYNC_RABBITMQ_MANAGEMENT_URL is set. What waits
in PostgreSQL for its organization's turn (fair dispatch) is added from the outbox.
"""

from __future__ import annotations

import json
import urllib.request
from base64 import b64encode
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pika
import pika.exceptions

from orgsync.pipelines.events import QUEUES
from orgsync.services.adapters.broker import connect


def _ready(channel: Any, name: str) -> tuple[int | None, int | None]:
    """(ready messages, consumers), or (None, None) when the queue does not exist yet."""
    try:
        frame = channel.queue_declare(queue=name, passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        return None, None
    return frame.method.message_count, frame.method.consumer_count


def depths(broker_url: str, management_url: str | None = None) -> list[dict[str, Any]]:
    connection = connect(broker_url)
    try:
        rows = count(connection)
    finally:
        connection.close()
    if management_url:
        add_management(rows, broker_url, management_url)
    return rows


def count(connection: pika.BlockingConnection) -> list[dict[str, Any]]:
    """Each queue's ready, delayed and dead-lettered messages and consumers (passive declares)."""
    rows = []
    channel = connection.channel()
    for queue in QUEUES:
        row: dict[str, Any] = {"queue": queue}
        for kind, name in (
            ("ready", queue),
            ("delayed", f"{queue}.DQ"),
            ("dead_lettered", f"{queue}.XQ"),
        ):
            if channel.is_closed:  # a passive declare of a missing queue closes the channel
                channel = connection.channel()
            count, consumers = _ready(channel, name)
            row[kind] = count or 0
            if kind == "ready":
                row["consumers"] = consumers or 0
                row["declared"] = count is not None
        row["in_flight"] = None
        rows.append(row)
    if channel.is_open:
        channel.close()
    return rows


# per queue, in one request for the whole vhost; the API refreshes them about every 5 s
MANAGEMENT_COLUMNS = (
    "name,messages,messages_unacknowledged,"
    "message_stats.publish_details.rate,message_stats.deliver_get_details.rate,"
    "message_stats.ack_details.rate"
)


def add_management(rows: list[dict[str, Any]], broker_url: str, management_url: str) -> bool:
    """Add what only the management API knows to `rows`: messages in flight (delivered, not
    yet acked), rates, and delayed messages a worker holds until they are due (a passive
    declare counts ready ones only). False when the API did not answer."""
    vhost = unquote(urlsplit(broker_url.split(",")[0]).path[1:]) or "/"
    parts = urlsplit(management_url)
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}"
    auth = b64encode(f"{parts.username or 'guest'}:{parts.password or 'guest'}".encode()).decode()
    request = urllib.request.Request(
        f"{base}/api/queues/{quote(vhost, safe='')}?columns={MANAGEMENT_COLUMNS}",
        headers={"Authorization": f"Basic {auth}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            queues = {info["name"]: info for info in json.load(response)}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    for row in rows:
        info = queues.get(row["queue"], {})
        stats = info.get("message_stats", {})
        row["in_flight"] = info.get("messages_unacknowledged", 0)
        held = queues.get(f"{row['queue']}.DQ", {}).get("messages", 0)
        row["delayed"] = max(row["delayed"], held)
        for rate in ("publish", "deliver_get", "ack"):
            row[f"{rate}_rate"] = stats.get(f"{rate}_details", {}).get("rate", 0.0)
    return True


def add_outbox(rows: list[dict[str, Any]], shares: list[dict[str, Any]] | None) -> None:
    """Add what the outbox knows to `rows` (services/read_models/dispatch.py): per queue, the
    pages held for their organization's turn and those in flight by orgsync's count (released,
    not yet finished), and the same per organization and lane under `organizations`. `shares`
    None: the outbox was not counted (fields None)."""
    for row in rows:
        mine = [s for s in shares or [] if s["queue"] == row["queue"]]
        row["held"] = None if shares is None else sum(s["held"] for s in mine)
        row["outbox_in_flight"] = None if shares is None else sum(s["in_flight"] for s in mine)
        row["organizations"] = [
            {k: s[k] for k in ("org_id", "org", "lane", "held", "in_flight")} for s in mine
        ]


def by_organization(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`organizations` of every queue row as one list, queue named, largest first."""
    flat = [{**share, "queue": row["queue"]} for row in rows for share in row["organizations"]]
    return sorted(flat, key=lambda s: (-(s["held"] + s["in_flight"]), -s["held"]))
