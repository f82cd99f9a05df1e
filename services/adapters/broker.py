"""The RabbitMQ broker: dramatiq's, with publisher confirms on every publish, and a consumer that
records every body it cannot read instead of dead-lettering it.

dramatiq's own consumer nacks a body it cannot decode, so RabbitMQ moves it to `Q.XQ` where
nobody reads it. Outside systems publish registration requests with plain AMQP, so a typo there
must come back as a rejected request with its reason. `screen` looks at each body as it comes
off a queue and replaces one it cannot accept by an envelope for that queue's own actor whose
single argument is `{UNREADABLE: reason}`; the stage middleware records the rejection (for
registrations, the stage records it as the request's verdict). What is accepted is an
allow-list, in `adapters/screening.py`. This is done in the consumer, not in a dramatiq encoder,
because only the consumer knows which queue a body came from, and dramatiq acks through the
consumer of the envelope's `queue_name`: an envelope naming another queue would be acked on the
wrong channel and stay unacked for ever.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import dramatiq
import dramatiq.errors
import pika
import pika.exceptions
from dramatiq.brokers.rabbitmq import RabbitmqBroker, _RabbitmqConsumer
from dramatiq.common import q_name
from dramatiq.middleware import CurrentMessage

from orgsync.pipelines.events import REGISTRATION_QUEUE
from orgsync.services.adapters import connection_advice, nodes
from orgsync.services.adapters.confirms import watchdog
from orgsync.services.adapters.nodes import parameters, urls
from orgsync.services.adapters.queue_types import TypedQueues
from orgsync.services.adapters.screening import problem, stand_in
from orgsync.services.errors import ServiceUnavailable

# The single argument of an envelope standing in for a body that could not be read at all.
UNREADABLE = "orgsync:unreadable"


def unreadable_reason(raw: object) -> str | None:
    """Why the message could not be read, when `raw` is the consumer's stand-in for it."""
    if isinstance(raw, dict) and len(raw) == 1 and isinstance(raw.get(UNREADABLE), str):
        return str(raw[UNREADABLE])
    return None


def replacement(body: bytes, reason: str, queue: str, actor: str, amqp_id: object) -> bytes:
    """The envelope that hands `reason` to the queue's actor in place of an unreadable body."""
    return json.dumps(
        {
            "queue_name": queue,
            "actor_name": actor,
            "args": [{UNREADABLE: reason}],
            "kwargs": {},
            "options": {},
            "message_id": stand_in(body, amqp_id),
        }
    ).encode()


def with_broker_user(body: bytes, user_id: object) -> bytes:
    """A screened registration envelope whose `orgsync_broker_user` option is the AMQP
    `user_id` property, which RabbitMQ refuses unless it names the publishing connection's
    user; without one the option goes, whatever the body said (the audit trail then names
    `amqp:unknown`). A retry republished by a worker carries none, so it loses the name too."""
    envelope = json.loads(body)
    options = envelope["options"]
    options.pop(BROKER_USER, None)
    if isinstance(user_id, str) and user_id:
        options[BROKER_USER] = user_id[:300]
    return json.dumps(envelope).encode()


# message options (schema/messages/envelope.json): who asked, as the publishing process says,
# and the broker user the consumer read off the AMQP properties
CLAIMED_ACTOR, CLAIMED_VIA, BROKER_USER = "orgsync_actor", "orgsync_via", "orgsync_broker_user"


class ScreeningConsumer(_RabbitmqConsumer):
    """dramatiq's consumer, with every body screened before it is decoded: the canonical queues
    and their delay queues (`Q.DQ`) alike, since anyone who can publish can publish there."""

    def __init__(self, broker: RabbitmqBroker, queue_name: str, prefetch: int, timeout: int):
        # dramatiq leaves its consumer's __init__ unannotated
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]
        self.iterator = self._screened(self.iterator)

    def _screened(self, deliveries: Iterator[Any]) -> Iterator[Any]:
        for method, properties, body in deliveries:
            if method is not None:
                actor = self._actor()
                reason = problem(body, self.queue_name, actor)
                if reason is not None and actor is not None:
                    if self.queue_name != q_name(self.queue_name):
                        reason = f"{reason} (on {self.queue_name})"
                    amqp_id = getattr(properties, "message_id", None)
                    body = replacement(body, reason, self.queue_name, actor, amqp_id)
                elif q_name(self.queue_name) == REGISTRATION_QUEUE:
                    body = with_broker_user(body, getattr(properties, "user_id", None))
            yield method, properties, body

    def _actor(self) -> str | None:
        canonical = q_name(self.queue_name)
        names = [a.actor_name for a in self.broker.actors.values() if a.queue_name == canonical]
        return names[0] if len(names) == 1 else None


# RabbitMQ closes a client connection that sent no heartbeat within its heartbeat timeout (60 s
# by default; its log says "missed heartbeats from client"). A thread's publisher connection
# (dramatiq keeps one per thread) sends heartbeats only while it is used, so one left idle for a
# minute was closed under it: its next publish, and broker.close() at SIGTERM, made pika log
# ConnectionResetError at error level before dramatiq retried on a new connection. Now a
# publisher connection idle for a third of the timeout is closed before it is used again (RabbitMQ
# may have dropped it already: what pika says while it is closed is expected, and dropped), and
# the publish opens a new one.
DEFAULT_HEARTBEAT_S = 60.0  # RabbitMQ's default heartbeat timeout, which pika accepts
PIKA_LOGGERS = (
    "pika.adapters.utils.io_services_utils",
    "pika.adapters.base_connection",
    "pika.adapters.blocking_connection",
    "pika.connection",
    "dramatiq.broker.Broker",  # ours, as dramatiq names its logger: "...closing Channel."
)


class _ClosingStale(logging.Filter):
    """Drops pika's records on the thread that is closing a connection RabbitMQ may have closed
    already, and only while it does, and on a thread whose publish the confirm watchdog cut
    (adapters/confirms.py logs that once, as `broker_confirm_overdue`)."""

    active = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.active, "on", False) and record.thread not in watchdog.cut_threads


_CLOSING_STALE = _ClosingStale()
for _name in PIKA_LOGGERS:
    logging.getLogger(_name).addFilter(_CLOSING_STALE)


@contextmanager
def closing_stale() -> Iterator[None]:
    _ClosingStale.active.on = True
    try:
        yield
    finally:
        _ClosingStale.active.on = False


class Broker(TypedQueues, RabbitmqBroker):
    """dramatiq's RabbitMQ broker on every node of ORGSYNC_BROKER_URL, declaring its queues with
    the type of ORGSYNC_QUEUE_TYPE (`queue_type`; None: the type the vhost's orgsync queues
    have, quorum for a vhost with none yet; see adapters/queue_types.py)."""

    def __init__(
        self,
        *,
        url: str,
        queue_type: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ):
        super().__init__(url=urls(url), **kwargs)
        self.url = url
        self.node_parameters = parameters(url)
        self.chosen_type = queue_type
        self._queue_type = queue_type
        self._type_lock = threading.Lock()
        self.clock = clock
        self.last_used: dict[int, float] = {}  # id(connection) -> opened, or last published on

    @property
    def consumer_class(self) -> type[ScreeningConsumer]:
        return ScreeningConsumer

    @property
    def connection(self) -> pika.BlockingConnection:
        """dramatiq's connection of this thread, to the first node that answers (nodes.py)."""
        connection = getattr(self.state, "connection", None)
        if connection is None:
            connection = self.state.connection = nodes.connect(self.node_parameters)
            self.connections.add(connection)
        self.last_used.setdefault(id(connection), self.clock())
        watch = getattr(self.state, "watch", None)
        if watch is not None and watch.connection is not connection:  # a retry's new one
            watchdog.arm(watch, connection)
        return connection

    @connection.deleter
    def connection(self) -> None:
        current = getattr(self.state, "connection", None)
        if current is not None:
            self.last_used.pop(id(current), None)
        RabbitmqBroker.connection.fdel(self)  # type: ignore[attr-defined]

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        """dramatiq's enqueue, each try bounded by the confirm watchdog (adapters/confirms.py):
        a try on a node that stopped answering fails, and the next goes to another node."""
        current = getattr(self.state, "connection", None)
        with watchdog.watching(current) as watch:
            self.state.watch = watch
            try:
                if current is not None and self._stale(current):
                    with closing_stale():
                        del self.connection
                return super().enqueue(message, delay=delay)
            finally:
                self.state.watch = None
                if (used := getattr(self.state, "connection", None)) is not None:
                    self.last_used[id(used)] = self.clock()

    def close(self) -> None:
        """Close every connection; those idle long enough for RabbitMQ to have dropped them
        first, and quietly."""
        stale = {c for c in self.connections if self._stale(c)}
        with closing_stale():
            for connection in stale:
                with suppress(Exception):
                    connection.close()
        self.connections -= stale
        self.channels -= {ch for ch in self.channels if getattr(ch, "connection", None) in stale}
        super().close()

    def _stale(self, connection: Any) -> bool:
        last = self.last_used.get(id(connection))
        return last is not None and self.clock() - last > heartbeat(connection) / 3

    @property
    def parameters(self) -> list[pika.URLParameters]:
        """Every node, in a new order for each connection (adapters/nodes.py)."""
        return nodes.in_order(self.node_parameters)

    @parameters.setter
    def parameters(self, value: Any) -> None:  # dramatiq's __init__ sets them
        self.node_parameters = value if isinstance(value, list) else [value]


def heartbeat(connection: Any) -> float:
    """The heartbeat timeout negotiated for `connection`, in seconds (pika keeps it in the
    connection's parameters once RabbitMQ has proposed it)."""
    value = getattr(getattr(getattr(connection, "_impl", None), "params", None), "heartbeat", None)
    return float(value) if isinstance(value, int | float) and value > 0 else DEFAULT_HEARTBEAT_S


def make_broker(url: str, queue_type: str | None = None) -> Broker:
    # confirm_delivery: every publish waits for RabbitMQ's confirm and is mandatory, so a
    # message that cannot be stored raises instead of vanishing (dramatiq's default is off).
    broker = Broker(url=url, queue_type=queue_type, confirm_delivery=True)
    broker.add_middleware(CurrentMessage())
    return broker


def unavailable(url: str, error: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(*connection_advice.rabbitmq(url, error))


def connect(url: str) -> pika.BlockingConnection:
    """A plain AMQP connection, or one line saying why there is none and what to do."""
    try:
        return nodes.connect(parameters(url))
    except (pika.exceptions.AMQPError, OSError) as error:
        raise unavailable(url, error) from error


def publish(broker: dramatiq.Broker, url: str, message: dramatiq.Message[object]) -> None:
    try:
        broker.enqueue(message)
    except dramatiq.errors.ConnectionError as error:
        raise unavailable(url, error) from error


def check_queues(settings: Any, names: list[str]) -> None:
    """Declare these queues as a worker would: one line (QueueTypeMismatch) when they are of
    another type than ORGSYNC_QUEUE_TYPE, ServiceUnavailable when RabbitMQ cannot be reached."""
    broker = make_broker(settings.broker_url, settings.queue_type)
    try:
        for name in names:
            broker.declare_queue(name, ensure=True)
    except dramatiq.errors.ConnectionError as error:
        raise unavailable(settings.broker_url, error) from error
    finally:
        broker.close()
