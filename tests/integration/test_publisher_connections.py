"""Error-level log lines are for errors: RabbitMQ closes a publisher connection that stayed idle
past its heartbeat timeout ("missed heartbeats from client"), and dramatiq's plain broker then
made pika log ConnectionResetError at error level on the next publish and at close. Ours closes
such a connection itself first. A heartbeat of 2 s makes RabbitMQ drop an idle one in seconds."""

from __future__ import annotations

import logging
import time

import dramatiq
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from orgsync.services.adapters.broker import make_broker

pytestmark = pytest.mark.integration
QUEUE = "idle-publisher"


def message(queue: str = QUEUE) -> dramatiq.Message[object]:
    return dramatiq.Message(queue_name=queue, actor_name="a", args=(), kwargs={}, options={})


def pika_errors(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.name.startswith("pika") and r.levelno >= 40]


def test_an_idle_publisher_connection_is_replaced_before_rabbitmq_drops_it_and_logs_nothing(
    own_broker_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{own_broker_url}?heartbeat=2"
    ours = make_broker(url)
    plain = RabbitmqBroker(url=url, confirm_delivery=True)
    # dramatiq's plain broker declares classic queues; ours quorum ones (a new vhost)
    for broker, queue in ((ours, QUEUE), (plain, f"{QUEUE}-plain")):
        broker.declare_queue(queue)
        broker.enqueue(message(queue))
    first = ours.connection
    time.sleep(7)  # idle: what is being tested is the passing of time (RabbitMQ drops at ~4 s)

    with caplog.at_level(logging.DEBUG):
        ours.enqueue(message())
        assert ours.connection is not first  # replaced, not reused after RabbitMQ dropped it
        ours.close()
    assert pika_errors(caplog.records) == []

    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        plain.enqueue(message(f"{QUEUE}-plain"))  # retried on a new connection, published
        plain.close()
    assert pika_errors(caplog.records) != []  # the noise the workers used to log
