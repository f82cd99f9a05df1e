"""The RabbitMQ broker: dramatiq's, with publisher confirms on every publish, and a consumer
that records every body it cannot read instead of dead-lettering it.

dramatiq's own consumer nacks a body it cannot decode, so RabbitMQ moves it to `Q.XQ` where
nobody reads it. Outside systems publish registration requests with plain AMQP, so a typo
there must come back as a rejected request with its reason. `screen` looks at each body as it
comes off a queue and replaces one it cannot accept by an envelope for that queue's own actor
whose single argument is `{UNREADABLE: reason}`; the actor records the rejection (for
registrations: `pipelines.registration.register`). This is done in the consumer, not in a
dramatiq encoder, because only the consumer knows which queue a body came from, and dramatiq
acks through the consumer of the envelope's `queue_name`: an envelope naming another queue
would be acked on the wrong channel and stay unacked for ever.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import dramatiq
import dramatiq.errors
import pika
import pika.exceptions
from dramatiq.brokers.rabbitmq import RabbitmqBroker, _RabbitmqConsumer
from dramatiq.common import q_name
from dramatiq.middleware import CurrentMessage

from orgsync.pipelines.registration import UNREADABLE
from orgsync.services import advice
from orgsync.services.errors import ServiceUnavailable

MAX_BODY_BYTES = 64 * 1024
# what dramatiq's Message(**fields) takes, with the JSON type each must have
REQUIRED = {
    "queue_name": "string",
    "actor_name": "string",
    "args": "array",
    "kwargs": "object",
    "options": "object",
}
OPTIONAL = {"message_id": "string", "message_timestamp": "integer"}
# options the worker and its middleware do arithmetic on before or after the actor runs
NUMERIC_OPTIONS = ("eta", "retries", "max_retries", "min_backoff", "max_backoff", "time_limit")


def describe(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5672}/{unquote(parts.path[1:]) or '/'}"


def problem(body: bytes, queue: str, actor: str | None) -> str | None:
    """Why `body`, taken off `queue`, is not an envelope its actor can run; None when it is."""
    if len(body) > MAX_BODY_BYTES:
        return f"the body is {len(body)} bytes, more than the {MAX_BODY_BYTES} accepted"
    try:
        envelope = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return "the body is not JSON: it is not UTF-8 text"
    except RecursionError:
        return "the body is not JSON that can be read: it is nested too deeply"
    except ValueError as error:
        # a JSONDecodeError's text names a position only, never the document
        return f"the body is not JSON: {str(error)[:200]}"
    if not isinstance(envelope, dict):
        return f"not a dramatiq envelope: the body is a JSON {json_type(envelope)}, not an object"
    expected = REQUIRED | OPTIONAL
    problems = []
    if missing := [name for name in REQUIRED if name not in envelope]:
        problems.append(f"missing {', '.join(missing)}")
    if unknown := [_quote(name) for name in envelope if name not in expected]:
        problems.append(f"unknown field(s) {', '.join(unknown)}")
    problems += [
        f"{name} must be a JSON {kind}, got {json_type(envelope[name])}"
        for name, kind in expected.items()
        if name in envelope and json_type(envelope[name]) != kind
    ]
    options = envelope.get("options")
    if isinstance(options, dict):
        problems += [
            f"option {name} must be a number"
            for name in NUMERIC_OPTIONS
            if options.get(name) is not None and json_type(options[name]) not in NUMBERS
        ]
    if problems:
        return "not a dramatiq envelope: " + "; ".join(problems)
    if envelope["queue_name"] != queue:
        return f"the envelope names queue {_quote(envelope['queue_name'])}, not {queue}"
    if envelope["actor_name"] != actor:
        return f"no actor {_quote(envelope['actor_name'])} consumes {queue} (only {actor})"
    return None


NUMBERS = ("integer", "number")


def json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    names = {float: "number", str: "string", list: "array", dict: "object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def replacement(body: bytes, reason: str, queue: str, actor: str, amqp_id: str | None) -> bytes:
    """The envelope that hands `reason` to the queue's actor in place of an unreadable body.

    Its id is the publisher's AMQP message id, else a hash of the body, so a redelivery of the
    same bytes is recognised as the same message and recorded once.
    """
    digest = hashlib.sha256(body).hexdigest()[:32]
    return json.dumps(
        {
            "queue_name": queue,
            "actor_name": actor,
            "args": [{UNREADABLE: reason}],
            "kwargs": {},
            "options": {},
            "message_id": f"unreadable:{amqp_id[:100] if amqp_id else digest}",
        }
    ).encode()


def _quote(value: object) -> str:
    text = str(value)
    return ascii(text[:40]) + ("..." if len(text) > 40 else "")


class ScreeningConsumer(_RabbitmqConsumer):  # type: ignore[misc]
    """dramatiq's consumer, with every canonical-queue body screened before it is decoded."""

    def __init__(self, broker: RabbitmqBroker, queue_name: str, prefetch: int, timeout: int):
        super().__init__(broker, queue_name, prefetch, timeout)
        # delay queues only ever hold envelopes dramatiq itself wrote
        if queue_name == q_name(queue_name):
            self.iterator = self._screened(self.iterator)

    def _screened(self, deliveries: Iterator[Any]) -> Iterator[Any]:
        for method, properties, body in deliveries:
            if method is not None:
                actor = self._actor()
                reason = problem(body, self.queue_name, actor)
                if reason is not None and actor is not None:
                    amqp_id = getattr(properties, "message_id", None)
                    body = replacement(body, reason, self.queue_name, actor, amqp_id)
            yield method, properties, body

    def _actor(self) -> str | None:
        names = [
            a.actor_name for a in self.broker.actors.values() if a.queue_name == self.queue_name
        ]
        return names[0] if len(names) == 1 else None


class Broker(RabbitmqBroker):
    @property
    def consumer_class(self) -> type[ScreeningConsumer]:
        return ScreeningConsumer


def make_broker(url: str) -> RabbitmqBroker:
    # confirm_delivery: every publish waits for RabbitMQ's confirm and is mandatory, so a
    # message that cannot be stored raises instead of vanishing (dramatiq's default is off).
    broker = Broker(url=url, confirm_delivery=True)
    broker.add_middleware(CurrentMessage())
    return broker


def unavailable(url: str, error: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(*advice.rabbitmq(url, error))


def connect(url: str) -> pika.BlockingConnection:
    """A plain AMQP connection, or one line saying why there is none and what to do."""
    try:
        return pika.BlockingConnection(pika.URLParameters(url))
    except (pika.exceptions.AMQPError, OSError) as error:
        raise unavailable(url, error) from error


def publish(broker: RabbitmqBroker, url: str, message: dramatiq.Message[object]) -> None:
    try:
        broker.enqueue(message)
    except dramatiq.errors.ConnectionError as error:
        raise unavailable(url, error) from error
