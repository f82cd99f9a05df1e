"""A node that stops answering while its connections stay open (paused, or cut off by a
partition), played by a TCP proxy in front of the real RabbitMQ that stops forwarding: a
publish waiting there for its confirm is cut after the watchdog's bound and sent through the
other node, long before pika's heartbeat check would have given up, and a node that does not
answer a new connection is tried last by the next ones."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import dramatiq
import pika
import pytest

from orgsync.services.adapters import confirms, nodes
from orgsync.services.adapters.broker import PIKA_LOGGERS, make_broker
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
    """The proxy, its node set aside by none of this process's earlier connections."""
    monkeypatch.setattr(confirms.watchdog, "within", BOUND_S)
    monkeypatch.setattr(nodes, "_set_aside", {})
    direct = urlsplit(own_broker_url)
    proxy = TcpProxy((direct.hostname or "127.0.0.1", direct.port or 5672))
    yield proxy
    proxy.cut()


def two_nodes(own_broker_url: str, proxy: TcpProxy) -> tuple[str, str]:
    """(the proxy's URL, the real node's), both giving up a handshake after 1 s."""
    direct = urlsplit(own_broker_url)
    options = f"heartbeat={HEARTBEAT_S}&stack_timeout=1"
    through = direct._replace(netloc=f"guest:guest@127.0.0.1:{proxy.port}", query=options)
    return urlunsplit(through), urlunsplit(direct._replace(query=options))


def port(connection: pika.BlockingConnection) -> int:
    return int(connection._impl.params.port)


def test_a_publish_waiting_on_a_silent_node_goes_through_another_node_within_the_bound(
    own_broker_url: str, silent: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    through, direct = two_nodes(own_broker_url, silent)
    broker = make_broker(f"{through},{direct}")
    nodes.set_aside("127.0.0.1", urlsplit(direct).port or 5672)  # the first publish: the proxy
    broker.declare_queue(QUEUE)
    first = broker.enqueue(message())
    assert port(broker.connection) == silent.port
    nodes._set_aside.clear()

    silent.freeze()
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG):
        second = broker.enqueue(message())
    waited = time.monotonic() - started

    assert port(broker.connection) == urlsplit(direct).port
    assert BOUND_S <= waited < HEARTBEAT_S / 3
    assert confirms.watchdog.cut_off >= 1
    # the lost connection was ours to cut: pika's and dramatiq's errors about it are dropped
    noise = [r for r in caplog.records if r.name in PIKA_LOGGERS and r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in noise] == []
    ids = [json.loads(body)["message_id"] for _, body in drain(own_broker_url, QUEUE)]
    assert sorted(ids) == sorted([first.message_id, second.message_id])
    broker.close()


def test_a_node_that_does_not_answer_a_connection_is_tried_last_for_a_while(
    own_broker_url: str, silent: TcpProxy
) -> None:
    through, direct = two_nodes(own_broker_url, silent)
    both = nodes.parameters(f"{through},{direct}")
    nodes.set_aside("127.0.0.1", urlsplit(direct).port or 5672)  # the proxy is tried first
    silent.freeze()

    connection = nodes.connect(both)

    assert port(connection) == urlsplit(direct).port
    assert {nodes.in_order(both)[0].port for _ in range(20)} == {urlsplit(direct).port}
    connection.close()
