"""What every stage message goes through around its actor: decoding, rejections, one log line.

`StageMessages` decodes each message into its stage's event before the actor runs; a message
that is not that event is recorded in `rejected_messages` with the reason and skipped (acked,
never dead-lettered). After the actor, what its stage function reported to be recorded (an
event naming what does not exist, an AWS answer that could not be read) is recorded the same
way, and one log line says what happened to the message: ids, stage, outcome, counts and
duration. A registration message is decoded into a `RegistrationMessage`: a body that carries
no request becomes a request with the reason, which the stage records as its verdict. A page
that will not be delivered again (done, skipped, rejected, or failed for the last time) is
finished: its outbox row goes and its organization's next page is sent (adapters/relay.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.common import q_name
from dramatiq.middleware import SkipMessage
from psycopg.types.json import Jsonb

from orgsync.pipelines import audit
from orgsync.pipelines.events import STAGE_BY_QUEUE, Event, MalformedEvent
from orgsync.pipelines.registration import RegistrationMessage
from orgsync.pipelines.request_rules import Problem
from orgsync.pipelines.sql import load
from orgsync.pipelines.stage import StageResult, rejected
from orgsync.services.adapters.broker import (
    BROKER_USER,
    CLAIMED_ACTOR,
    CLAIMED_VIA,
    unreadable_reason,
)
from orgsync.services.logs import get_logger

log = get_logger("orgsync.worker")

Record = Callable[[str, str, str, object], None]  # queue, message id, reason, body
Finish = Callable[[str], None]  # message id

SQL = load("orgsync.services.processes")


def decode(kind: type[Event], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Event:
    """The event a message carries, or MalformedEvent saying why it carries none."""
    if len(args) != 1 or kwargs:
        raise MalformedEvent("expected the event as the message's single argument")
    if unreadable := unreadable_reason(args[0]):
        raise MalformedEvent(unreadable)  # the consumer's stand-in for an unreadable body
    return kind.from_payload(args[0])


def decode_registration(
    message_id: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: dict[str, Any] | None = None,
) -> Any:
    """The registration request a message carries, or the problem that says why there is none;
    with who asked for it, from its options (screened: schema/messages/envelope.json)."""
    by, broker_user = asked_by(options or {})
    if len(args) != 1 or kwargs:
        problem = Problem("request", SINGLE_ARGUMENT)
        return RegistrationMessage(message_id, None, problem, by, broker_user)
    if unreadable := unreadable_reason(args[0]):
        problem = Problem("message", unreadable)
        return RegistrationMessage(message_id, None, problem, by, broker_user)
    return RegistrationMessage(message_id, args[0], None, by, broker_user)


def asked_by(options: dict[str, Any]) -> tuple[audit.By, str | None]:
    """The actor the console, API or CLI named in the options, else the broker user (set by
    the consumer from the AMQP user_id RabbitMQ checked), else `amqp:unknown`."""
    broker_user = options.get(BROKER_USER)
    broker_user = broker_user if isinstance(broker_user, str) and broker_user else None
    actor, via = options.get(CLAIMED_ACTOR), options.get(CLAIMED_VIA)
    if isinstance(actor, str) and via in ("console", "api", "cli"):
        return audit.By(actor, via), broker_user
    fallback = f"amqp:{broker_user}" if broker_user else audit.UNKNOWN_BROKER_USER
    return audit.By(fallback, "amqp"), broker_user


SINGLE_ARGUMENT = "the request must be the message's single argument"


class StageMessages(dramatiq.Middleware):
    def __init__(self, record: Record, finish: Finish, max_retries: int) -> None:
        self.record = record
        self.finish = finish
        self.max_retries = max_retries
        self.local = threading.local()

    def event(self) -> Any:
        """The event of the message this thread is running (set before its actor runs)."""
        return self.local.event

    def report(self, result: StageResult) -> None:
        """Called by an actor with what its stage function returned."""
        self.local.result = result

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self.local.started = time.perf_counter()
        self.local.event = self.local.result = None
        stage = STAGE_BY_QUEUE.get(q_name(message.queue_name))
        if stage is None:
            return
        if stage.event is None:  # the registration queue
            self.local.event = decode_registration(
                message.message_id, message.args, message.kwargs, message.options
            )
            return
        try:
            self.local.event = decode(stage.event, message.args, message.kwargs)
        except MalformedEvent as error:
            self.local.result = rejected(str(error))
            raise SkipMessage(str(error)) from error

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._settle(message, exception)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._settle(message, None)

    def _settle(self, message: Any, exception: BaseException | None) -> None:
        stage = STAGE_BY_QUEUE.get(q_name(message.queue_name))
        if stage is None:
            return
        result: StageResult | None = self.local.result
        event = self.local.event if isinstance(self.local.event, Event) else None
        body = event.payload() if event else {"args": message.args, "kwargs": message.kwargs}
        for reason in result.rejections if result else ():
            try:
                self.record(stage.queue, message.message_id, reason, body)
            except Exception as error:  # PostgreSQL down: the log line below still says why
                log.warning("rejection_not_recorded", error=str(error)[:300])
        fields: dict[str, Any] = result.log_fields() if result else {"outcome": "done"}
        if isinstance(exception, dramatiq.Retry):
            fields.update(outcome="retry", error=str(exception)[:300])
        elif exception is not None:
            fields.update(outcome="error", error=f"{type(exception).__name__}: {exception}"[:300])
        line = {
            "stage": stage.name,
            "duration_ms": round((time.perf_counter() - self.local.started) * 1000, 1),
            "delivery": message.options.get("retries", 0) + 1,
            "message_id": message.message_id,
            "org_id": None,
            "sync_id": None,
            **(event.payload() if event else {}),
            **fields,
        }
        log.info("stage", **line)
        # dramatiq's Retries runs after this and delivers a failed message again, up to its limit
        retried = exception is not None and message.options.get("retries", 0) < self.max_retries
        if stage.event is not None and not retried:
            self.finish(message.message_id)
        if result and result.rejections:
            log.warning(
                "message_rejected",
                queue=stage.queue,
                message_id=message.message_id,
                reason=result.rejections[0],
            )


def recorder(connect: Callable[[], Any]) -> Record:
    """Records a rejection in `rejected_messages` through `connect`."""

    def record(queue: str, message_id: str, reason: str, body: object) -> None:
        with connect() as conn:
            conn.execute(
                SQL["reject_message"], (queue, message_id, reason, str(Jsonb(body).obj)[:10_000])
            )

    return record
