"""Loaded into the workers for the "every message twice" fault: each message they publish
(relayed events, dramatiq's retries) goes to RabbitMQ a second time, same id and body, on the
same confirmed channel, so every one of them is delivered twice."""

from __future__ import annotations

from typing import Any

import dramatiq
import pika


class PublishTwice(dramatiq.Middleware):
    def after_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        # `message` is what was published: for a delayed one, its copy bound for the .DQ queue
        broker.channel.basic_publish(
            exchange="",
            routing_key=message.queue_name,
            body=message.encode(),
            properties=pika.BasicProperties(delivery_mode=2),
            mandatory=True,
        )


dramatiq.get_broker().add_middleware(PublishTwice())
