"""The nodes of ORGSYNC_BROKER_URL: one AMQP URL, or one per node of a cluster separated by
commas, all on one vhost. Every connection orgsync opens tries them in a random order and takes
the first that answers, so clients spread over the cluster and move on when a node dies."""

from __future__ import annotations

import random
from urllib.parse import unquote, urlsplit

import pika


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
    return random.sample(nodes, len(nodes))
