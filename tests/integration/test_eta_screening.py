"""Issue 25: an `eta` where dramatiq never writes one, on real RabbitMQ and PostgreSQL.

dramatiq's consumer holds any message with `options.eta` unacked until then, on whatever queue
it came from. Before the screening refused it on main queues, two envelopes an hour ahead
published on `org-registered` took both prefetch slots of a two-thread worker's consumer there,
and nothing after them on that queue was delivered for the hour. Now each is recorded with its
reason and acked, and the messages behind them are served at once (here the envelopes are ten
minutes ahead, which a delay queue would accept: the queue alone makes them wrong).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import dramatiq
import pika
import psycopg
import pytest
from dramatiq.common import dq_name

from orgsync.pipelines.events import STAGE_BY_NAME
from orgsync.services.adapters.screening import stand_in
from orgsync.services.processes.actors import build
from orgsync.services.settings import Settings
from tests.support.amqp import publish
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
DISCOVERY = STAGE_BY_NAME["discovery"]
TIMEOUT = 60
THREADS = 2


@pytest.fixture
def own_settings(settings: Settings, own_broker_url: str) -> Settings:
    """The test's own vhost: no other test's worker takes what it publishes."""
    return dataclasses.replace(settings, broker_url=own_broker_url)


@pytest.fixture
def worker(own_settings: Settings) -> Iterator[dramatiq.Worker]:
    """Every stage's actor on real RabbitMQ, two threads, prefetching what they can run (as
    `orgsync worker --threads 2` does)."""
    broker = build(own_settings)
    for queue in broker.get_declared_queues():  # before the test publishes to them
        broker.declare_queue(queue, ensure=True)
    running = dramatiq.Worker(broker, worker_threads=THREADS, worker_timeout=100)
    running.queue_prefetch = THREADS
    running.start()
    try:
        yield running
    finally:
        running.stop(timeout=10_000)
        broker.close()


def envelope(message_id: str, **options: Any) -> bytes:
    """A discovery page that names no organization orgsync could have: its actor rejects it
    without calling AWS, so a page served is a row in rejected_messages."""
    return json.dumps(
        {
            "queue_name": DISCOVERY.queue,
            "actor_name": DISCOVERY.actor,
            "args": [{"org_id": "o-\u0000x", "sync_id": message_id}],
            "kwargs": {},
            "options": options,
            "message_id": message_id,
        }
    ).encode()


def rejected(database_url: str) -> dict[str, str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT message_id, reason FROM rejected_messages").fetchall()
    return dict(rows)


def ready(broker_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        declared = connection.channel().queue_declare(queue, passive=True)
        return int(declared.method.message_count)
    finally:
        connection.close()


def test_an_eta_on_a_main_queue_is_recorded_and_acked_and_the_queue_is_served_behind_it(
    own_settings: Settings, worker: dramatiq.Worker
) -> None:
    # within what a delay queue accepts: only the queue it is on makes it wrong
    ten_minutes_ahead = int(time.time() * 1000) + 600_000
    held = [envelope(f"eta-{n}", eta=ten_minutes_ahead) for n in range(THREADS)]
    behind = [envelope(f"behind-{n}") for n in range(2 * THREADS)]

    publish(own_settings.broker_url, DISCOVERY.queue, held + behind)

    found = wait_until(
        lambda: len(rows := rejected(own_settings.database_url)) == len(held + behind) and rows,
        TIMEOUT,
        "the held envelopes and every one behind them recorded",
    )
    for n in range(THREADS):
        reason = found[stand_in(held[n], None)]  # published without an AMQP message id
        assert "option eta is only accepted on the delay queue org-registered.DQ" in reason
    assert all("org_id must be an organization id" in found[f"behind-{n}"] for n in range(4))
    assert not worker.consumers[DISCOVERY.queue].delay_queue.qsize()  # none waits for its eta

    worker.stop(timeout=10_000)  # a message held unacked would be back on its queue now
    assert ready(own_settings.broker_url, DISCOVERY.queue) == 0
    assert ready(own_settings.broker_url, dq_name(DISCOVERY.queue)) == 0
