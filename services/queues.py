"""Queue depth over plain AMQP: a passive declare works on any RabbitMQ, plugins or not.

Passive declares count ready messages only; messages in flight (delivered, not yet acked)
need RabbitMQ's management API, used when ORGSYNC_RABBITMQ_MANAGEMENT_URL is set.
"""

from __future__ import annotations

import json
import urllib.request
from base64 import b64encode
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pika
import pika.exceptions

from pipelines.events import QUEUES
from services.broker import unavailable


def _ready(channel: Any, name: str) -> tuple[int | None, int | None]:
    """(ready messages, consumers), or (None, None) when the queue does not exist yet."""
    try:
        frame = channel.queue_declare(queue=name, passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        return None, None
    return frame.method.message_count, frame.method.consumer_count


def depths(broker_url: str, management_url: str | None = None) -> list[dict[str, Any]]:
    try:
        connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    except pika.exceptions.AMQPError as error:
        raise unavailable(broker_url, error) from error
    rows = []
    try:
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
    finally:
        connection.close()
    if management_url:
        _add_in_flight(rows, broker_url, management_url)
    return rows


def _add_in_flight(rows: list[dict[str, Any]], broker_url: str, management_url: str) -> None:
    vhost = unquote(urlsplit(broker_url).path[1:]) or "/"
    parts = urlsplit(management_url)
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}"
    auth = b64encode(f"{parts.username or 'guest'}:{parts.password or 'guest'}".encode()).decode()
    for row in rows:
        request = urllib.request.Request(
            f"{base}/api/queues/{quote(vhost, safe='')}/{quote(row['queue'], safe='')}",
            headers={"Authorization": f"Basic {auth}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                info = json.load(response)
        except OSError:
            continue
        row["in_flight"] = info.get("messages_unacknowledged")
        row["publish_rate"] = info.get("message_stats", {}).get("publish_details", {}).get("rate")
