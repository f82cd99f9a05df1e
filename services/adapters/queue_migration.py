"""`orgsync queues migrate --to quorum|classic`: every orgsync queue, its `Q.DQ` and its `Q.XQ`
moved to the other type without losing a message, workers running or not.

A queue cannot change type in place, and its name is its address, so each one is drained into
a spare queue (`NAME.migrating`), deleted once empty, declared again with the new type, and
refilled from the spare, which is then deleted. Every message is moved with a publisher confirm
before it is acked where it was, so a migration cut short (Ctrl-C, a node lost) leaves each
message in the old queue, the spare or the new one, and running the command again finishes
the job (a spare left behind is emptied first). `Q.XQ` goes first, so a dead letter always
has a queue to land in, then `Q.DQ`, then `Q`.

Quorum queues cannot be deleted only-if-empty: a quorum queue is deleted right after a drain
that found it empty, and a message published in that instant by a running worker is dropped
with it (RabbitMQ counts it; the command says so, and the stuck-sync re-drive,
ORGSYNC_STUCK_AFTER, sends its page again). Moving from quorum to classic with the workers
stopped leaves no such instant. The spare is always a classic queue, for the same reason.

While workers run: a publish that finds its queue gone for a moment is returned (dramatiq
publishes as mandatory) and retried, declaring the queue again; a worker that follows the vhost
(ORGSYNC_QUEUE_TYPE unset) declares a moved queue with the type it now has. Messages a worker
holds (running, or kept until their `eta`) finish as they would have; their acks to the deleted
queue are simply dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from dramatiq.common import dq_name, xq_name

from orgsync.pipelines.events import QUEUES
from orgsync.services.adapters import queue_types
from orgsync.services.adapters.broker import connect
from orgsync.services.errors import UserError

SPARE = ".migrating"
ATTEMPTS = 20  # rounds of drain-then-delete while publishers keep a queue from emptying


@dataclass
class Moved:
    queue: str
    messages: int  # moved out and back in; 0 for a queue that was already of the type
    migrated: bool  # False: it already had the type (or did not exist: declared with it)
    dropped: int = 0  # published into a quorum queue in the instant of its delete


def plan(queue_type: str) -> list[tuple[str, dict[str, Any]]]:
    """Every orgsync queue name with the arguments it gets, dead letters first."""
    names = [name for queue in QUEUES for name in (xq_name(queue), dq_name(queue), queue)]
    return [(name, queue_types.arguments_for(name, queue_type)) for name in names]


def migrate(
    broker_url: str, queue_type: str, report: Callable[[Moved], None] = lambda m: None
) -> list[Moved]:
    connection = connect(broker_url)
    try:
        done = []
        for name, arguments in plan(queue_type):
            moved = migrate_queue(connection, name, arguments)
            report(moved)
            done.append(moved)
        return done
    finally:
        if connection.is_open:
            connection.close()


def migrate_queue(connection: Any, name: str, arguments: dict[str, Any]) -> Moved:
    spare = name + SPARE
    from_quorum = arguments["x-queue-type"] == queue_types.CLASSIC
    count = dropped = 0
    migrated = False
    for _ in range(ATTEMPTS):
        if _declare(connection, name, arguments):
            break
        migrated = True
        _declare(connection, spare, {"x-queue-type": queue_types.CLASSIC})
        count += move(connection, name, spare)
        if from_quorum:
            dropped += _delete(connection, name)
        else:
            _delete_if_empty(connection, name)  # a publisher may have been quicker: round again
    else:
        raise UserError(
            f"queue {name} kept receiving messages and was not moved after {ATTEMPTS} rounds;"
            " run `orgsync queues migrate` again"
        )
    if _exists(connection, spare):  # this run's, or one an interrupted run left
        move(connection, spare, name)
        while not _delete_if_empty(connection, spare):
            move(connection, spare, name)
    return Moved(name, count, migrated, dropped)


def move(connection: Any, source: str, target: str) -> int:
    """Every ready message of `source` published to `target` (confirmed) and then acked."""
    channel = connection.channel()
    channel.confirm_delivery()
    moved = 0
    try:
        while True:
            method, properties, body = channel.basic_get(source, auto_ack=False)
            if method is None:
                return moved
            headers = dict(properties.headers or {})
            headers.pop("x-delivery-count", None)  # the target queue counts afresh
            properties.headers = headers or None
            channel.basic_publish("", target, body, properties, mandatory=True)
            channel.basic_ack(method.delivery_tag)
            moved += 1
    finally:
        if channel.is_open:
            channel.close()


def _declare(connection: Any, name: str, arguments: dict[str, Any]) -> bool:
    """True once `name` exists with these arguments (declared now if it did not exist); False
    when it exists with another type."""
    channel = connection.channel()
    try:
        channel.queue_declare(queue=name, durable=True, arguments=arguments)
    except pika.exceptions.ChannelClosedByBroker as error:
        if error.reply_code == 406:  # another type, or an older orgsync's arguments
            return False
        raise
    channel.close()
    return True


def _exists(connection: Any, name: str) -> bool:
    channel = connection.channel()
    try:
        channel.queue_declare(queue=name, passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        return False
    channel.close()
    return True


def _delete(connection: Any, name: str) -> int:
    """Delete `name` (a quorum queue: no if-empty); the messages deleted with it."""
    channel = connection.channel()
    frame = channel.queue_delete(queue=name)
    channel.close()
    return int(getattr(frame.method, "message_count", 0) or 0)


def _delete_if_empty(connection: Any, name: str) -> bool:
    channel = connection.channel()
    try:
        channel.queue_delete(queue=name, if_empty=True)
    except pika.exceptions.ChannelClosedByBroker as error:
        if error.reply_code == 406:  # not empty
            time.sleep(0.05)
            return False
        raise
    channel.close()
    return True
