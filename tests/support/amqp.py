"""RabbitMQ as a worker or a publisher sees it: the queues declared, raw bodies published."""

from __future__ import annotations

import pika
import pika.exceptions
from dramatiq.common import dq_name, xq_name

from orgsync.pipelines.events import QUEUES
from orgsync.services.adapters.broker import connect, make_broker

# every queue orgsync declares: each stage's, its delay queue and its dead letters
EVERY_QUEUE = [name for q in QUEUES for name in (q, dq_name(q), xq_name(q))]


def declare_queues(broker_url: str) -> None:
    """The five queues with their .DQ and .XQ, as a worker would declare them."""
    broker = make_broker(broker_url)
    for queue in QUEUES:
        broker.declare_queue(queue, ensure=True)
    broker.close()


def purge_queues(broker_url: str) -> None:
    """Empty every orgsync queue, `.DQ` and `.XQ` there is: work a test's worker left unfinished
    must not reach the next test's worker on the run's shared vhost."""
    connection = connect(broker_url)
    try:
        for name in EVERY_QUEUE:
            channel = connection.channel()
            try:
                channel.queue_purge(name)
            except pika.exceptions.ChannelClosedByBroker:  # never declared in this vhost
                continue
            channel.close()
    finally:
        connection.close()


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


def bind_to_changes(broker_url: str, queue: str, routing_key: str = "#") -> None:
    """A queue of a downstream system's own, bound to orgsync's exchange of change events."""
    from orgsync.pipelines.outbound import EXCHANGE

    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, EXCHANGE, routing_key)
    finally:
        connection.close()


def drain(broker_url: str, queue: str) -> list[tuple[str, bytes]]:
    """Every message waiting in `queue` as (routing key, body), acknowledged."""
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    got: list[tuple[str, bytes]] = []
    try:
        channel = connection.channel()
        while True:
            method, _properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return got
            got.append((method.routing_key, body))
    finally:
        connection.close()
