"""A node that stops answering while its connections stay open (paused, or cut off by a
partition), played by a TCP proxy in front of the real RabbitMQ that stops forwarding: a
publish waiting there for its confirm is cut after the watchdog's bound and sent through the
other node, long before pika's heartbeat check would have given up, and the silent node is
tried last by the next connections."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import dramatiq
import pytest

from orgsync.services.adapters import confirms, nodes
from orgsync.services.adapters.broker import make_broker
from tests.support.amqp import drain
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration
QUEUE = "silent-node"
BOUND_S = 2.0
HEARTBEAT_S = 60  # pika alone would wait at least this long on the silent node


def message() -> dramatiq.Message[object]:
    return dramatiq.Message(queue_name=QUEUE, actor_name="a", args=(), kwargs={}, options={})


@pytest.fixture
def silent(own_broker_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TcpProxy]:
    monkeypatch.setattr(confirms.watchdog, "within", BOUND_S)
    monkeypatch.setattr(nodes, "_set_aside", {})
    direct = urlsplit(own_broker_url)
    proxy = TcpProxy((direct.hostname or "127.0.0.1", direct.port or 5672))
    yield proxy
    proxy.cut()


def test_a_publish_waiting_on_a_silent_node_goes_through_another_node_within_the_bound(
    own_broker_url: str, silent: TcpProxy
) -> None:
    direct = urlsplit(own_broker_url)
    through_proxy = urlunsplit(direct._replace(netloc=f"guest:guest@127.0.0.1:{silent.port}"))
    broker = make_broker(
        f"{through_proxy}?heartbeat={HEARTBEAT_S},{own_broker_url}?heartbeat={HEARTBEAT_S}"
    )
    nodes.set_aside(direct.hostname or "127.0.0.1", direct.port or 5672)  # the proxy first
    broker.declare_queue(QUEUE)
    first = broker.enqueue(message())
    assert broker.connection._impl.params.port == silent.port

    silent.freeze()
    started = time.monotonic()
    second = broker.enqueue(message())
    waited = time.monotonic() - started

    assert broker.connection._impl.params.port == (direct.port or 5672)
    assert BOUND_S <= waited < HEARTBEAT_S / 3
    assert confirms.watchdog.cut_off >= 1
    assert [p.port for p in broker.parameters][-1] == silent.port  # tried last for now
    ids = [json.loads(body)["message_id"] for _, body in drain(own_broker_url, QUEUE)]
    assert sorted(ids) == sorted([first.message_id, second.message_id])
    broker.close()
