"""The exporter's RabbitMQ side: each stage queue's depths and consumers, and their families.

Passive declares of every queue (ready, delayed and dead-lettered messages, consumers) on one
connection kept between scrapes and opened again when it went away.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pika
import pika.exceptions

from orgsync.services.adapters import queues
from orgsync.services.adapters.nodes import parameters
from orgsync.services.processes.exporter.families import Family

BROKER_ERRORS = (pika.exceptions.AMQPError, OSError)


class Broker:
    """The exporter's connection to RabbitMQ, kept between scrapes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.amqp: pika.BlockingConnection | None = None

    def connection(self) -> pika.BlockingConnection:
        if self.amqp is None or not self.amqp.is_open:
            self.close()
            nodes = parameters(self.url)  # any node of ORGSYNC_BROKER_URL that answers
            for params in nodes:
                params.socket_timeout = 3
                params.stack_timeout = 5
                params.connection_attempts = 1
            self.amqp = pika.BlockingConnection(nodes)
        return self.amqp

    def close(self) -> None:
        if self.amqp is not None and self.amqp.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                self.amqp.close()
        self.amqp = None

    def depths(self) -> list[dict[str, Any]]:
        """A row per stage queue (three passive declares each)."""
        return queues.count(self.connection())

    def ping(self) -> None:
        channel = self.connection().channel()
        channel.exchange_declare("amq.direct", passive=True)  # in every vhost: a round trip
        channel.close()


def add_queues(out: dict[str, Family], rows: list[dict[str, Any]]) -> None:
    for row in rows:
        for kind in ("ready", "delayed", "dead_lettered", "in_flight"):
            if row.get(kind) is not None:
                out["orgsync_queue_messages"].add_metric([row["queue"], kind], row[kind])
        out["orgsync_queue_consumers"].add_metric([row["queue"]], row["consumers"])
