"""The validation dead-letter queue over plain AMQP: what `retry-failed` takes back, its depth."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions

from orgsync.pipelines.events import AccountsDiscovered
from orgsync.services.adapters.broker import connect

DEAD_LETTERS = f"{AccountsDiscovered.queue}.XQ"  # where dramatiq puts validations it gave up on


class DeadLetters:
    """The validation dead-letter queue, read with basic_get: every message taken stays unacked
    until `ack`, and closing the connection puts the rest back where they were."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self.connection: Any = None
        self.channel: Any = None

    def __enter__(self) -> DeadLetters:
        self.connection = connect(self.broker_url)
        self.channel = self.connection.channel()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.connection.is_open:
            self.connection.close()

    def count(self) -> int:
        """Ready dead letters (a passive declare; 0 before any worker declared the queue)."""
        try:
            frame = self.channel.queue_declare(queue=DEAD_LETTERS, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            self.channel = self.connection.channel()
            return 0
        return int(frame.method.message_count)

    def take(self) -> Iterator[tuple[int, bytes]]:
        """Each ready dead letter, one at a time: the caller keeps what it needs of one body
        before the next is fetched, so a long queue is never held in memory at once."""
        for _ in range(self.count()):  # bounded: never chase messages arriving meanwhile
            method, _properties, body = self.channel.basic_get(DEAD_LETTERS, auto_ack=False)
            if method is None:
                break
            yield method.delivery_tag, body

    def ack(self, tags: list[int]) -> None:
        for tag in tags:
            self.channel.basic_ack(tag)


def dead_letter_count(broker_url: str) -> int:
    with DeadLetters(broker_url) as letters:
        return letters.count()
