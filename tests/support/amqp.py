"""RabbitMQ as a worker or a publisher sees it: the queues declared, raw bodies published."""

from __future__ import annotations

import pika

from orgsync.pipelines.events import QUEUES
from orgsync.services.adapters.broker import make_broker


def declare_queues(broker_url: str) -> None:
    """The five queues with their .DQ and .XQ, as a worker would declare them."""
    broker = make_broker(broker_url)
    for queue in QUEUES:
        broker.declare_queue(queue, ensure=True)
    broker.close()


def publish(broker_url: str, queue: str, bodies: list[bytes]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish(
                "", queue, body, pika.BasicProperties(delivery_mode=2), mandatory=True
            )
    finally:
        connection.close()
