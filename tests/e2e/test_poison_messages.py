"""Issue 18, findings 1-3: envelopes crafted to stop worker threads, on every queue and its `.DQ`.

A real `orgsync worker --threads 2` on real RabbitMQ and PostgreSQL. Before the allow-list, two
envelopes with `options.throws` (and a NUL in the message id, which makes the actor raise)
killed both threads: the process stayed up with two messages unacked and answered nothing
more. Now each is recorded with its reason, both threads go on consuming, and `/healthz` says
so. The watchdog that ends a worker whose thread died is in
tests/integration/test_poison_messages.py.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import psycopg
import pytest
from dramatiq.common import dq_name

from orgsync.pipelines.events import QUEUES, REGISTRATION_QUEUE, STAGES
from orgsync.services.settings import Settings
from tests.support.amqp import publish
from tests.support.waiting import wait_until
from tests.support.workers import running_worker

pytestmark = pytest.mark.e2e
ACTORS = {s.queue: s.actor for s in STAGES}
TIMEOUT = 60


def poison(queue: str, actor: str, tag: str) -> dict[str, bytes]:
    """Envelopes that passed the old screening, each with words its recorded reason contains."""

    def body(**fields: Any) -> bytes:
        envelope = {
            "queue_name": queue,
            "actor_name": actor,
            "args": [{"nickname": "x"}],
            "kwargs": {},
            "options": {},
            "message_id": f"{tag}-{len(fields)}-{sorted(fields)}",
            **fields,
        }
        return json.dumps(envelope).encode()

    return {
        "option(s) 'throws' not accepted": body(
            message_id=f"kill\u0000-{tag}-1", options={"throws": "x"}
        ),
        "'throws'": body(message_id=f"kill\u0000-{tag}-2", options={"throws": "x", "retries": 0}),
        "'on_success'": body(options={"on_success": "register_organization"}),
        "'pipe_target'": body(options={"pipe_target": {"actor_name": actor}}),
        "message_id must be printable": body(message_id=f"nul\u0000{tag}"),
        "message_id must be 1 to 200": body(message_id="x" * 3000),
        "option retries must be an integer": body(options={"retries": "many"}),
        "not JSON": b"{not json" + tag.encode(),
        "more than the 65536": b'{"x": "' + tag.encode() + b"a" * 2_000_000 + b'"}',
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return 0, {}


@pytest.fixture
def two_thread_worker(settings: Settings, tmp_path: Path) -> Iterator[int]:
    """`orgsync worker --threads 2` with its metrics and /healthz on a port of its own."""
    port = free_port()
    with running_worker(
        settings,
        "http://127.0.0.1:9",  # no AWS call is made here
        tmp_path / "worker.log",
        threads=2,
        ORGSYNC_WORKER_METRICS_PORT=str(port),
        ORGSYNC_WORKER_METRICS_DIR=str(tmp_path / "metrics"),
    ):
        wait_until(lambda: get_health(port)[0] == 200, TIMEOUT, "the worker healthy")
        wait_until(lambda: declared(settings.broker_url), TIMEOUT, "the worker's queues")
        yield port


def declared(broker_url: str) -> bool:
    """Whether the worker's consumers have declared every queue and delay queue."""
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        for queue in [*QUEUES, *map(dq_name, QUEUES)]:
            connection.channel().queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        connection.close()
    return True


def count(settings: Settings, sql: str) -> int:
    with psycopg.connect(settings.database_url) as c:
        row = c.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_poison_envelopes_on_every_queue_and_its_dq_are_recorded_and_every_thread_consumes_on(
    settings: Settings, two_thread_worker: int
) -> None:
    queues = [q for q in QUEUES] + [dq_name(q) for q in QUEUES]
    expected: dict[str, dict[str, bytes]] = {}
    for queue in queues:
        canonical = queue.removesuffix(".DQ")
        expected[queue] = poison(queue, ACTORS[canonical], tag=queue)
        if canonical != REGISTRATION_QUEUE:  # a NUL in an identifier of the event itself
            ghost = {"org_id": "o-\u0000x", "sync_id": str(uuid.uuid4())}
            if canonical != "org-registered":
                ghost["account_ids"] = ["000000000000"]  # type: ignore[assignment]
            expected[queue]["org_id must be an organization id"] = json.dumps(
                {
                    "queue_name": queue,
                    "actor_name": ACTORS[canonical],
                    "args": [ghost],
                    "kwargs": {},
                    "options": {},
                    "message_id": f"ghost-{queue}",
                }
            ).encode()
        publish(settings.broker_url, queue, list(expected[queue].values()))

    registrations = "SELECT count(*) FROM registrations WHERE NOT accepted"
    stage_queues = [q for q in queues if q.removesuffix(".DQ") != REGISTRATION_QUEUE]
    per_queue = len(poison("q", "a", "t"))
    wait_until(
        lambda: (
            count(settings, registrations) >= 2 * per_queue
            and count(settings, "SELECT count(*) FROM rejected_messages")
            >= len(stage_queues) * (per_queue + 1)
        ),
        TIMEOUT,
        "every poison envelope recorded",
    )
    with psycopg.connect(settings.database_url) as c:
        reasons = [r for (r,) in c.execute("SELECT reason FROM rejected_messages")]
        reasons += [
            p["message"]
            for (ps,) in c.execute("SELECT reasons FROM registrations WHERE NOT accepted")
            for p in ps
        ]
    text = " / ".join(reasons)
    for queue, bodies in expected.items():
        for words in bodies:
            assert any(words in r for r in reasons), (queue, words)
        if queue.endswith(".DQ"):
            assert f"(on {queue})" in text

    # both threads are alive and both consume: more requests than threads each get a verdict
    status, state = get_health(two_thread_worker)
    assert status == 200, state
    assert state["processes"][0]["worker_threads"] == 2
    assert state["processes"][0]["worker_threads_alive"] == 2
    before = count(settings, registrations)
    publish(settings.broker_url, REGISTRATION_QUEUE, [b"{after %d" % i for i in range(6)])
    wait_until(
        lambda: count(settings, registrations) == before + 6,
        TIMEOUT,
        "a verdict for each request after the poison",
    )
    assert get_health(two_thread_worker)[0] == 200
