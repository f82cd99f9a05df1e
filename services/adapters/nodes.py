"""The nodes of ORGSYNC_BROKER_URL: one AMQP URL, or one per node of a cluster separated by
commas, all on one vhost. Every connection orgsync opens tries them in a random order and takes
the first that answers, so clients spread over the cluster and move on when a node dies. A node
that just failed to answer a connection is tried last for a while: connecting to a node that
stopped answering costs the whole handshake timeout."""

from __future__ import annotations

import math
import random
import threading
import time
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException


def urls(url: str) -> list[str]:
    """The node URLs of ORGSYNC_BROKER_URL (one, or several separated by commas)."""
    return [part.strip() for part in url.split(",") if part.strip()]


def vhost(url: str) -> str:
    return unquote(urlsplit(urls(url)[0]).path[1:]) or "/"


def describe(url: str) -> str:
    nodes = ",".join(
        f"{p.hostname or 'localhost'}:{p.port or 5672}" for p in map(urlsplit, urls(url))
    )
    return f"{nodes}/{vhost(url)}"


# Connecting to a node that stopped answering (paused, or cut off) waits this long before the
# next node is tried, unless the URL says otherwise (?socket_timeout=...&stack_timeout=...)
SOCKET_TIMEOUT_S = 5.0
STACK_TIMEOUT_S = 10.0
SET_ASIDE_S = 60.0  # how long a node that did not answer a connection is tried last

_set_aside: dict[tuple[str, int], float] = {}  # (host, port) -> when
_set_aside_lock = threading.Lock()


def set_aside(host: str, port: int) -> None:
    with _set_aside_lock:
        _set_aside[(host, port)] = time.monotonic()


def in_order(nodes: list[pika.URLParameters]) -> list[pika.URLParameters]:
    """The nodes in a random order, except that those set aside in the last SET_ASIDE_S
    seconds come last, the most recently set aside at the end."""
    now = time.monotonic()
    with _set_aside_lock:
        aside = {node: at for node, at in _set_aside.items() if now - at < SET_ASIDE_S}
    shuffled = random.sample(nodes, len(nodes))
    return sorted(shuffled, key=lambda p: aside.get((p.host, p.port), -math.inf))


def parameters(url: str) -> list[pika.URLParameters]:
    """Connection parameters for every node, in a random order: each connection goes to any
    node that answers, so clients spread over the cluster and move on when a node dies."""
    nodes = []
    for node in urls(url):
        params = pika.URLParameters(node)
        query = urlsplit(node).query
        if "socket_timeout" not in query:
            params.socket_timeout = SOCKET_TIMEOUT_S
        if "stack_timeout" not in query:
            params.stack_timeout = STACK_TIMEOUT_S
        nodes.append(params)
    return in_order(nodes)


def connect(nodes: list[pika.URLParameters]) -> pika.BlockingConnection:
    """A connection to the first node that answers, tried in `in_order`'s order; each node
    that does not is set aside. Raises AMQPConnectionError, from the last node's error (pika
    raises a handshake's timeout as it is, which is no AMQPError)."""
    failed: Exception = pika.exceptions.AMQPConnectionError("no RabbitMQ node given")
    for node in in_order(nodes):
        try:
            return pika.BlockingConnection(node)
        except (pika.exceptions.AMQPConnectionError, AMQPConnectorException) as error:
            set_aside(node.host, node.port)
            failed = error
    if isinstance(failed, pika.exceptions.AMQPConnectionError):
        raise failed
    raise pika.exceptions.AMQPConnectionError(str(failed)) from failed
