"""The exchange `orgsync.changes`: every event for other systems, published with RabbitMQ's
confirm, routing key = the event's type, so that any system binds a queue of its own to the
types it wants. Nothing of orgsync consumes it.

A row is marked published only after RabbitMQ confirmed it; a publisher that dies before its
commit leaves the rows to the next one, which sends them again with the same `message_id` (the
event's id): at least once, as the outbox relay does for the stages.
"""

from __future__ import annotations

import contextlib

import pika
import pika.exceptions

from orgsync.pipelines.outbound import CONTENT_TYPE, EXCHANGE, cloud_event, encode
from orgsync.pipelines.sql import load
from orgsync.services.adapters.broker import connect
from orgsync.services.adapters.confirms import watchdog
from orgsync.services.adapters.db import Pool

SQL = load("orgsync.services.adapters")
BATCH = 500


class ExchangePublisher:
    def __init__(self, url: str) -> None:
        self.url = url
        self.connection: pika.BlockingConnection | None = None
        self.channel: pika.adapters.blocking_connection.BlockingChannel | None = None

    def open(self) -> pika.adapters.blocking_connection.BlockingChannel:
        if self.channel is None or not self.channel.is_open:
            self.close()
            self.connection = connect(self.url)
            channel = self.connection.channel()
            channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
            channel.confirm_delivery()  # every basic_publish below waits for its confirm
            self.channel = channel
        return self.channel

    def publish_pending(self, pool: Pool, limit: int = BATCH) -> int:
        """Publish up to `limit` unpublished events, oldest first; how many."""
        with pool.connection() as conn:
            rows = conn.execute(SQL["claim_unpublished_events"], (limit,)).fetchall()
            if not rows:
                return 0
            channel = self.open()
            with watchdog.watching() as watch:  # each confirm within its bound
                for row in rows:
                    watchdog.arm(watch, self.connection)
                    event = cloud_event(row)
                    channel.basic_publish(
                        EXCHANGE,
                        row["type"],
                        encode(event),
                        pika.BasicProperties(
                            content_type=CONTENT_TYPE,
                            delivery_mode=pika.DeliveryMode.Persistent,
                            message_id=event["id"],
                            type=row["type"],
                        ),
                    )
            conn.execute(SQL["mark_events_published"], ([r["seq"] for r in rows],))
        return len(rows)

    def close(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                connection.close()
