"""ORGSYNC_QUEUE_TYPE on the real RabbitMQ: quorum for a new vhost, the type a vhost already has
otherwise, a worker that refuses the other type in one line, `orgsync queues migrate` losing
nothing (workers stopped or running), and the delivery limit ending in `Q.XQ`."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from typing import Any

import dramatiq
import pika
import pika.exceptions
import pytest
from dramatiq.common import xq_name

from orgsync.pipelines.events import QUEUES, AccountsDiscovered
from orgsync.services.adapters import queue_types
from orgsync.services.adapters.broker import Broker, make_broker
from orgsync.services.adapters.queue_migration import migrate
from orgsync.services.settings import Settings
from tests.support.amqp import EVERY_QUEUE
from tests.support.waiting import wait_until

QUEUE = AccountsDiscovered.queue


def type_of(url: str, name: str) -> str | None:
    """The type `name` has in RabbitMQ (None: no such queue)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        found = queue_types.probe(connection, [name])
    finally:
        connection.close()
    return next(iter(found), None)


def depth(url: str, name: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return int(connection.channel().queue_declare(name, passive=True).method.message_count)
    finally:
        connection.close()


def declared(url: str, queue_type: str | None) -> Broker:
    broker = make_broker(url, queue_type)
    for queue in QUEUES:
        broker.declare_queue(queue, ensure=True)
    return broker


def publish_raw(url: str, queue: str, bodies: list[bytes]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    for body in bodies:
        channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    connection.close()


def orgsync(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "orgsync", *args],
        env={**os.environ, "ORGSYNC_BROKER_URL": url, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_new_vhost_gets_quorum_queues_and_one_with_classic_queues_keeps_them(
    own_broker_url: str, rabbitmq_server: Any
) -> None:
    declared(own_broker_url, None).close()
    assert {type_of(own_broker_url, q) for q in QUEUES} == {"quorum"}
    from tests.support.services import new_vhost

    with new_vhost(rabbitmq_server, "orgsync-classic") as classic_url:
        declared(classic_url, "classic").close()
        following = make_broker(classic_url)  # ORGSYNC_QUEUE_TYPE unset
        assert following.queue_type == "classic"
        following.declare_queue(QUEUE, ensure=True)
        following.close()


def test_finding_the_type_on_a_vhost_without_queues_warns_of_nothing(
    own_broker_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker(own_broker_url)  # ORGSYNC_QUEUE_TYPE unset: probe every queue
    with caplog.at_level(logging.WARNING, logger="pika"):
        assert broker.queue_type == "quorum"
    broker.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_worker_refuses_queues_of_the_other_type_in_one_line_naming_the_fix(
    own_broker_url: str, database_url: str
) -> None:
    declared(own_broker_url, "classic").close()
    done = orgsync(
        own_broker_url,
        "worker",
        ORGSYNC_QUEUE_TYPE="quorum",
        ORGSYNC_DATABASE_URL=database_url,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "holds classic orgsync queues" in lines[0]
    assert "orgsync queues migrate --to quorum" in lines[0]


def test_migrate_moves_every_message_to_the_new_type_and_back(own_broker_url: str) -> None:
    declared(own_broker_url, "classic").close()
    bodies = {name: [f"{name}-{n}".encode() for n in range(5)] for name in EVERY_QUEUE}
    for name, messages in bodies.items():
        publish_raw(own_broker_url, name, messages)

    done = orgsync(own_broker_url, "queues", "migrate", "--to", "quorum")
    assert done.returncode == 0, done.stderr
    n = len(EVERY_QUEUE)
    assert f"{n} queue(s) moved to quorum, {5 * n} message(s)" in done.stdout
    assert {type_of(own_broker_url, name) for name in EVERY_QUEUE} == {"quorum"}
    again = orgsync(own_broker_url, "queues", "migrate", "--to", "quorum")
    assert "0 queue(s) moved to quorum" in again.stdout, again.stdout

    migrate(own_broker_url, "classic")
    assert {type_of(own_broker_url, name) for name in EVERY_QUEUE} == {"classic"}
    connection = pika.BlockingConnection(pika.URLParameters(own_broker_url))
    channel = connection.channel()
    for name, messages in bodies.items():  # every message, in its order, where it was
        got = [channel.basic_get(name, auto_ack=True)[2] for _ in messages]
        assert got == messages
        assert channel.basic_get(name, auto_ack=True)[0] is None
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            connection.channel().queue_declare(name + ".migrating", passive=True)
    connection.close()


def test_migrate_loses_nothing_while_a_worker_consumes_and_publishers_publish(
    own_broker_url: str,
) -> None:
    """A worker that follows the vhost's type keeps consuming, and a publisher keeps
    publishing (some messages delayed, held by the worker until due), while every queue is
    moved to quorum and back: each message is handled at least once."""
    declared(own_broker_url, "classic").close()
    publisher, consumer = make_broker(own_broker_url), make_broker(own_broker_url)
    seen: set[int] = set()
    lock = threading.Lock()

    @dramatiq.actor(queue_name=QUEUE, actor_name="count", broker=consumer, max_retries=0)
    def count(n: int) -> None:
        with lock:
            seen.add(n)

    worker = dramatiq.Worker(consumer, worker_threads=2, worker_timeout=100)
    worker.start()
    sent = 400
    try:
        for n in range(sent):
            publisher.enqueue(count.message(n), delay=1500 if n % 5 == 0 else None)
            if n == 100:
                migrate(own_broker_url, "quorum")
            if n == 250:
                migrate(own_broker_url, "classic")
            time.sleep(0.005)
        wait_until(lambda: len(seen) == sent, 60, "every message handled")
    finally:
        worker.stop()
        publisher.close()
        consumer.close()
    assert {type_of(own_broker_url, name) for name in EVERY_QUEUE} == {"classic"}


def test_a_message_past_the_delivery_limit_lands_in_xq_and_orgsync_failed_counts_it(
    own_broker_url: str, database_url: str
) -> None:
    """A consumer that dies holding a message returns it; the 21st return dead-letters it."""
    declared(own_broker_url, None).close()
    publish_raw(own_broker_url, QUEUE, [b'{"poison": true}'])
    for delivery in range(queue_types.DELIVERY_LIMIT + 1):
        connection = pika.BlockingConnection(pika.URLParameters(own_broker_url))
        method = wait_until(
            lambda c=connection: c.channel().basic_get(QUEUE)[0], 10, f"delivery {delivery}"
        )
        assert method is not None
        connection.close()  # dies holding it: RabbitMQ takes it back
    wait_until(lambda: depth(own_broker_url, xq_name(QUEUE)) == 1, 10, "the dead letter")
    assert depth(own_broker_url, QUEUE) == 0
    done = orgsync(own_broker_url, "failed", ORGSYNC_DATABASE_URL=database_url)
    assert done.returncode == 0, done.stderr
    assert f"1 validation message(s) dead-lettered in {xq_name(QUEUE)}" in done.stdout


def test_settings_take_one_url_per_node_on_one_vhost() -> None:
    urls = "amqp://g:p@10.0.0.1:5672/v, amqp://g:p@10.0.0.2:5672/v"
    settings = Settings.from_env({"ORGSYNC_BROKER_URL": urls, "ORGSYNC_QUEUE_TYPE": "Classic"})
    assert settings.broker_url == urls.replace(" ", "")
    assert settings.queue_type == "classic"


def test_orgsync_check_names_the_queue_type_and_the_fix_for_the_other_one(
    own_broker_url: str,
) -> None:
    from orgsync.services.use_cases.check import check_queues

    declared(own_broker_url, "classic").close()
    connection = pika.BlockingConnection(pika.URLParameters(own_broker_url))
    try:
        assert check_queues(connection).detail == f"all {len(QUEUES)} queues declared, classic"
        finding = check_queues(connection, "quorum")
    finally:
        connection.close()
    assert (finding.ok, finding.fix) == (False, "run `orgsync queues migrate --to quorum`")
