"""The type of orgsync's RabbitMQ queues (ORGSYNC_QUEUE_TYPE): quorum or classic, and the
arguments each queue, its delay queue `Q.DQ` and its dead-letter queue `Q.XQ` are declared with.

Quorum queues are replicated (Raft) over a cluster's nodes: a publisher-confirmed message
survives the loss of a minority of them. What they change, and how orgsync meets it:

- No global QoS: dramatiq sets a per-consumer prefetch (`basic_qos` without `global`).
- A delivery limit. A message returned to its queue (its consumer died, or lost its connection,
  while holding it) counts one delivery more; past DELIVERY_LIMIT it is dead-lettered into
  `Q.XQ`, where `orgsync failed` counts it, instead of killing consumer after consumer for
  ever. Set here, not left to the server's default (none on 3.x, 20 on 4.x). Dead-lettering
  is at-least-once (RabbitMQ keeps the message until `Q.XQ` confirmed it), which needs
  `x-overflow: reject-publish`; no queue has a length limit, so nothing is ever rejected.
  `Q.XQ` has no delivery limit: `orgsync failed` and `retry-failed` read it unacked and give
  back what they leave, which counts as a delivery (and -1, "unlimited" on 4.x, drops a message
  at its first return on 3.10).
- Consumer timeouts: a worker holds a delayed message unacked until its `eta`. orgsync's
  longest delay (pipelines/aws_errors.py MAX_BACKOFF_SECONDS, 300 s) is far below RabbitMQ's
  consumer timeout (30 min), so the channel is never closed under it (a unit test keeps it so).
- No priorities before RabbitMQ 4: orgsync sets no `x-max-priority` (its actor priorities are
  dramatiq's, inside a worker process).

Leaders spread over the nodes (`x-queue-leader-locator: balanced`), so the loss of one node
moves a share of the queues, never all of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import pika
import pika.exceptions
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL
from dramatiq.common import dq_name, q_name, xq_name

from orgsync.pipelines.events import QUEUES
from orgsync.services.adapters.nodes import vhost
from orgsync.services.errors import UserError

QUORUM, CLASSIC = "quorum", "classic"
TYPES = (QUORUM, CLASSIC)
DEFAULT = QUORUM  # for a vhost with no orgsync queue yet
# 21 deliveries of one message (RabbitMQ 4's default): far more than the few returns a worker
# crash, a node's loss or a rolling restart cause, few enough to stop a message that kills
# every worker that takes it
DELIVERY_LIMIT = 20


class NoQueueIsAnAnswer(logging.Filter):
    """pika warns of every channel RabbitMQ closes. A passive declare of a queue that is not
    there (`probe` on a vhost no worker has used yet) is an answer its caller reads from the
    exception: five such warnings at a first start say nothing an operator can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "NOT_FOUND - no queue" not in record.getMessage()


logging.getLogger("pika.channel").addFilter(NoQueueIsAnAnswer())


def other(queue_type: str) -> str:
    return CLASSIC if queue_type == QUORUM else QUORUM


def work_arguments(queue_type: str, dead_letters: str) -> dict[str, Any]:
    """A queue's, or its delay queue's: what they cannot take goes to `dead_letters` (Q.XQ)."""
    arguments: dict[str, Any] = {
        "x-queue-type": queue_type,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letters,
    }
    if queue_type == QUORUM:
        arguments |= {
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            "x-queue-leader-locator": "balanced",
        }
    return arguments


def dead_letter_arguments(queue_type: str) -> dict[str, Any]:
    """`Q.XQ`'s: dramatiq's week-long message TTL (RabbitMQ expires messages head first, so it
    must be one value for all)."""
    arguments: dict[str, Any] = {"x-queue-type": queue_type, "x-message-ttl": DEAD_MESSAGE_TTL}
    if queue_type == QUORUM:
        arguments["x-queue-leader-locator"] = "balanced"
    return arguments


def mismatch(vhost: str, queue: str, found: str, wanted: str, chosen: bool) -> str:
    """The one line a process stops with when `queue` is of another type than it declares."""
    if chosen:
        return (
            f"RabbitMQ vhost {vhost!r} holds {found} orgsync queues ({queue}) but"
            f" ORGSYNC_QUEUE_TYPE={wanted}: run `orgsync queues migrate --to {wanted}` to move"
            f" them, or set ORGSYNC_QUEUE_TYPE={found}"
        )
    return (
        f"RabbitMQ vhost {vhost!r} holds orgsync queues of both types ({queue} is {found}):"
        f" run `orgsync queues migrate --to {QUORUM}` (or --to {CLASSIC}) to finish moving them"
    )


def arguments_for(name: str, queue_type: str) -> dict[str, Any]:
    """What orgsync declares `name` (a queue, its `.DQ` or its `.XQ`) with."""
    if name.endswith(".XQ"):
        return dead_letter_arguments(queue_type)
    return work_arguments(queue_type, xq_name(q_name(name)))


def other_arguments(name: str, refused: str, wanted: str) -> str:
    """The line for a queue that matches neither type's arguments (an older orgsync's)."""
    return f"queue {name}: {refused}; `orgsync queues migrate --to {wanted}` declares it anew"


def probe(connection: Any, names: list[str]) -> dict[str, str]:
    """The types of the queues among `names` that exist: {type: the first queue of it}. A
    declare with a type's arguments succeeds only on a queue of that type; a queue matching
    neither is reported with RabbitMQ's words."""
    found: dict[str, str] = {}
    for name in names:
        channel = connection.channel()
        try:
            channel.queue_declare(queue=name, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            continue  # not there
        refused = ""
        for queue_type in TYPES:
            try:
                channel.queue_declare(
                    queue=name, durable=True, arguments=arguments_for(name, queue_type)
                )
            except pika.exceptions.ChannelClosedByBroker as error:
                refused = refused or error.reply_text
                channel = connection.channel()
                continue
            found.setdefault(queue_type, name)
            break
        else:
            raise UserError(other_arguments(name, refused, DEFAULT))
        channel.close()
    return found


class QueueTypeMismatch(UserError):
    """orgsync's queues in RabbitMQ are of another type than this process declares."""


class TypedQueues:
    """dramatiq's RabbitmqBroker declaring its queues, delay queues and dead-letter queues with a
    type (mixed into adapters/broker.py's Broker, before RabbitmqBroker)."""

    url: str
    chosen_type: str | None  # ORGSYNC_QUEUE_TYPE; None: what the vhost has
    _queue_type: str | None
    _type_lock: threading.Lock
    queues: set[str]
    parameters: Any
    channel: Any

    @property
    def queue_type(self) -> str:
        """The type this broker declares queues with, found on first use when not chosen."""
        with self._type_lock:
            if self._queue_type is None:
                self._queue_type = self._found_type()
            return self._queue_type

    def _found_type(self) -> str:
        connection = pika.BlockingConnection(self.parameters)
        try:
            found = probe(connection, sorted(self.queues | set(QUEUES)))
        finally:
            with suppress(Exception):
                connection.close()
        if len(found) > 1:
            kind, queue = sorted(found.items())[0]
            raise QueueTypeMismatch(mismatch(vhost(self.url), queue, kind, "", chosen=False))
        return next(iter(found), DEFAULT)

    def _declare_queue(self, queue_name: str) -> Any:
        xq = xq_name(queue_name)
        return self._declare(queue_name, lambda t: work_arguments(t, xq))

    def _declare_dq_queue(self, queue_name: str) -> Any:
        xq = xq_name(queue_name)
        return self._declare(dq_name(queue_name), lambda t: work_arguments(t, xq))

    def _declare_xq_queue(self, queue_name: str) -> Any:
        return self._declare(xq_name(queue_name), dead_letter_arguments)

    def _declare(self, name: str, arguments: Callable[[str], dict[str, Any]]) -> Any:
        """Declare `name` with this broker's type. A queue of the other type stops a process
        whose type was chosen (ORGSYNC_QUEUE_TYPE); one that follows the vhost declares it
        with the type it has (`orgsync queues migrate` moves the queues one by one)."""
        wanted = self.queue_type
        try:
            return self.channel.queue_declare(queue=name, durable=True, arguments=arguments(wanted))
        except pika.exceptions.ChannelClosedByBroker as error:
            del self.channel
            if error.reply_code != 406:  # PRECONDITION_FAILED: declared with other arguments
                raise
            refused = error.reply_text
        found = other(wanted)
        try:
            frame = self.channel.queue_declare(queue=name, durable=True, arguments=arguments(found))
        except pika.exceptions.ChannelClosedByBroker as error:
            del self.channel
            if error.reply_code != 406:
                raise
            raise UserError(other_arguments(name, refused, wanted)) from None
        if self.chosen_type is not None:
            raise QueueTypeMismatch(mismatch(vhost(self.url), name, found, wanted, chosen=True))
        return frame
