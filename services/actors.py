"""The workers: one actor per queue, each a thin shell around a stage in `pipelines/`.

An actor decodes its event, calls the stage inside one transaction (state and next events
together, through the outbox), then relays the events. Retry policy sits on each decorator.
Longest backoff is one minute: far below RabbitMQ's 30-minute delivery timeout, which would
otherwise close the channel holding the delayed message.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import dramatiq
from botocore.exceptions import BotoCoreError, ClientError
from dramatiq.middleware import CurrentMessage
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from pipelines import badges, discovery, harvest, references, registration, validation
from pipelines.aws_errors import classify
from pipelines.credentials import Keyring
from pipelines.events import (
    REGISTRATION_ACTOR,
    REGISTRATION_QUEUE,
    AccountDiscovered,
    AccountValidated,
    Event,
    MalformedEvent,
    OrgRegistered,
    TagsHarvested,
)
from pipelines.orgs import Organization, load_organization
from pipelines.outbox import emit
from pipelines.request_rules import Problem
from services import db, metrics, relay
from services.aws import Aws
from services.broker import make_broker
from services.keys import load_keyring
from services.logs import configure as configure_logging
from services.logs import get_logger
from services.settings import Settings

SETTINGS = Settings.from_env()
configure_logging(SETTINGS.log_level, SETTINGS.log_format)
log = get_logger("orgsync.worker")


class OpenResources(dramatiq.Middleware):
    """Open the pool and start the outbox sweeper as each worker process boots."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        resources()


broker = make_broker(SETTINGS.broker_url)
broker.add_middleware(OpenResources())
# before Retries: dramatiq runs after_* hooks in reverse, so it sees what Retries decided
broker.add_middleware(metrics.StageMetrics(SETTINGS), before=dramatiq.middleware.Retries)
dramatiq.set_broker(broker)

MAX_RETRIES = 5
RETRY = {"max_retries": MAX_RETRIES, "min_backoff": 1_000, "max_backoff": 60_000}
# validation's budget is its own, and short: see pipelines/validation.py MAX_ATTEMPTS
VALIDATION_MAX_RETRIES = validation.MAX_ATTEMPTS - 1
VALIDATION_RETRY = {**RETRY, "max_retries": VALIDATION_MAX_RETRIES}
E = TypeVar("E", bound=Event)
# Within a worker, later stages run first (dramatiq: a lower priority sooner): accounts already
# in flight reach their badges before new ones start, so a tag change shows up promptly.
# Reconciliation keeps the default, 0.
T = TypeVar("T")


@dataclass
class Resources:
    pool: ConnectionPool
    keyring: Keyring
    aws: Aws

    def relay(self, message_ids: list[str]) -> None:
        relay.relay(self.pool, broker, message_ids)


@functools.cache
def resources() -> Resources:
    """Opened on first use in each worker process (after the fork), then shared by its threads."""
    pool = db.open_pool(SETTINGS.database_url, max_size=16)
    sweeper = relay.Sweeper(pool, broker, stuck_after=SETTINGS.stuck_after)
    sweeper.start()
    return Resources(pool=pool, keyring=load_keyring(SETTINGS), aws=Aws())


def message_id() -> str:
    message = CurrentMessage.get_current_message()
    return message.message_id if message else "unknown"


def attempt() -> int:
    """1 on the first delivery, 2 on the first retry, ..."""
    message = CurrentMessage.get_current_message()
    return (message.options.get("retries", 0) if message else 0) + 1


def decode(kind: type[E], args: tuple[Any, ...], kwargs: dict[str, Any]) -> E | None:
    """The event, or None after recording why the message could not be read."""
    try:
        if len(args) != 1 or kwargs:
            raise MalformedEvent("expected the event as the message's single argument")
        if unreadable := registration.unreadable_reason(args[0]):
            raise MalformedEvent(unreadable)  # the consumer's stand-in for an unreadable body
        event = kind.from_payload(args[0])
        with resources().pool.connection() as conn:
            if missing := references.unknown(conn, event):
                raise MalformedEvent(missing)  # names an organization, sync or account not there
        return event  # type: ignore[return-value]
    except MalformedEvent as error:
        reject(kind.queue, str(error), {"args": args, "kwargs": kwargs})
        return None


def reject(queue: str, reason: str, body: object) -> None:
    with resources().pool.connection() as conn:
        conn.execute(
            "INSERT INTO rejected_messages (queue_name, message_id, reason, body)"
            " VALUES (%s, %s, %s, %s)",
            (queue, message_id(), reason, str(Jsonb(body).obj)[:10_000]),
        )
    log.warning("message_rejected", queue=queue, message_id=message_id(), reason=reason)


@contextmanager
def stage(name: str, event: Event) -> Iterator[dict[str, Any]]:
    """One log line per event handled: ids, stage, outcome and duration.

    Every line has org_id, sync_id and account_id (null for a whole-organization event), the
    delivery (1, then 2 on dramatiq's first retry, ...) and the message id. outcome is done,
    skipped, retry (a transient error, tried again later) or error (dramatiq retries it until
    its budget runs out).
    """
    started = time.perf_counter()
    outcome: dict[str, Any] = {"outcome": "done"}
    try:
        yield outcome
    except dramatiq.Retry as retry:
        outcome.update(outcome="retry", error=str(retry)[:300])
        raise
    except Exception as error:
        outcome.update(outcome="error", error=f"{type(error).__name__}: {error}"[:300])
        raise
    finally:
        ids = {"account_id": None, **event.payload()}
        log.info(
            "stage",
            stage=name,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            delivery=attempt(),
            message_id=message_id(),
            **ids,
            **outcome,
        )


def organization(event: Event) -> Organization | None:
    with resources().pool.connection() as conn:
        org = load_organization(conn, resources().keyring, event.org_id)
    if org is None:
        no_organization(event)
    return org


def no_organization(event: Event) -> None:
    reject(event.queue, f"no organization {event.org_id}", event.payload())


def commit(events_of: Any) -> None:
    """Run a stage in one transaction and relay the events it committed."""
    r = resources()
    with r.pool.connection() as conn:
        ids = emit(conn, events_of(conn))
    try:
        r.relay(ids)
    except Exception as error:
        # committed: the outbox keeps the events and the sweeper publishes them once RabbitMQ
        # is back; failing here would only send the message round the retries for nothing
        log.warning("relay_deferred", events=len(ids), error=str(error)[:300])


@dramatiq.actor(queue_name=REGISTRATION_QUEUE, actor_name=REGISTRATION_ACTOR, **RETRY)
def register_organization(*args: Any, **kwargs: Any) -> None:
    r = resources()
    verdict = None

    def decide(conn: Any) -> list[Event]:
        nonlocal verdict
        if len(args) != 1 or kwargs:
            verdict = registration.reject_malformed(
                conn,
                message_id(),
                None,
                [Problem("request", "the request must be the message's single argument")],
            )
            return []
        verdict, events = registration.register(
            conn, r.keyring, args[0], message_id(), r.aws.assume
        )
        return events

    commit(decide)
    assert verdict is not None
    log.info(
        "registration",
        request_id=verdict.request_id,
        org_id=verdict.org_id,
        accepted=verdict.accepted,
        reasons=len(verdict.reasons),
    )


def prefetched(pages: Iterator[T], ahead: int = 4) -> Iterator[T]:
    """`pages`, read by a thread of their own up to `ahead` in advance: the walk's next AWS page
    is on its way while this one is stored and relayed (at 10,000 accounts the two, one after
    the other, set the pace of the whole sync). The walk's errors are raised here."""
    buffer: queue.Queue[tuple[bool, Any]] = queue.Queue(ahead)
    stop = threading.Event()

    def put(item: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not put((False, page)):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            put((True, error))
            return
        put((True, None))

    threading.Thread(target=produce, name="discovery-prefetch", daemon=True).start()
    try:
        while True:
            last, item = buffer.get()
            if last:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()


@dramatiq.actor(queue_name=OrgRegistered.queue, actor_name=OrgRegistered.actor, priority=3, **RETRY)
def discover_accounts(*args: Any, **kwargs: Any) -> None:
    event = decode(OrgRegistered, args, kwargs)
    if event is None or (org := organization(event)) is None:
        return
    r = resources()
    with stage("discovery", event) as outcome:
        tally: Counter[str] = Counter()
        error = None
        malformed: list[str] = []  # AWS answers missing a field: skipped, the walk incomplete
        try:
            for batch in prefetched(
                discovery.walk(
                    r.aws.organizations(org), org.filters.limit_ou_ids, malformed=malformed
                )
            ):
                commit(
                    lambda conn, b=batch: discovery.load_batch(conn, org, event.sync_id, b, tally)
                )
        except discovery.MalformedAnswer as failure:
            error = f"MalformedAnswer: {failure}"
        except (ClientError, BotoCoreError, KeyError) as failure:
            verdict = classify(failure)
            if verdict.transient and attempt() <= MAX_RETRIES:
                raise
            error = f"{verdict.code}: {verdict.message}"
        if malformed and error is None:
            error = discovery.malformed_error(malformed)
        with r.pool.connection() as conn:
            outcome["counts"] = discovery.finish(conn, org.org_id, event.sync_id, tally, error)
        outcome["complete"] = error is None


@dramatiq.actor(
    queue_name=AccountDiscovered.queue,
    actor_name=AccountDiscovered.actor,
    priority=2,
    **VALIDATION_RETRY,
)
def validate_account(*args: Any, **kwargs: Any) -> None:
    event = decode(AccountDiscovered, args, kwargs)
    if event is None:
        return
    r = resources()
    with stage("validation", event) as outcome:
        with r.pool.connection() as conn:  # one checkout for both reads
            due = validation.is_due(conn, event)
            org = load_organization(conn, r.keyring, event.org_id) if due else None
        if not due:
            outcome["outcome"] = "skipped"
            return
        if org is None:
            no_organization(event)
            return
        try:
            result = validation.assume_member_role(r.aws.sts, org, event.account_id)
        except validation.TransientAwsError as error:
            if attempt() <= VALIDATION_MAX_RETRIES:
                # dramatiq.Retry: counted against max_retries like any error, logged without
                # a traceback, and delayed by our jittered backoff instead of dramatiq's
                raise dramatiq.Retry(
                    str(error), delay=validation.retry_delay_ms(attempt())
                ) from error
            result = validation.gave_up(error, attempt())
        commit(lambda conn: validation.record(conn, event, result, attempt()))
        outcome.update(status=result.status.value, reason=result.reason)


@dramatiq.actor(
    queue_name=AccountValidated.queue, actor_name=AccountValidated.actor, priority=1, **RETRY
)
def harvest_tags(*args: Any, **kwargs: Any) -> None:
    event = decode(AccountValidated, args, kwargs)
    if event is None:
        return
    r = resources()
    with stage("harvest", event) as outcome:
        with r.pool.connection() as conn:  # one checkout for both reads
            old = harvest.stored_tags(conn, event)
            org = load_organization(conn, r.keyring, event.org_id) if old is not None else None
        if old is None:
            outcome["outcome"] = "skipped"
            return
        if org is None:
            no_organization(event)
            return
        try:
            new = harvest.fetch_tags(r.aws.organizations(org), event.account_id)
        except (ClientError, BotoCoreError) as error:
            verdict = classify(error)
            if verdict.transient and attempt() <= MAX_RETRIES:
                raise
            # tags that cannot be read are kept as they were: never wiped on an error
            new = old
            outcome["error"] = f"{verdict.code}: {verdict.message}"
        except harvest.MalformedTags as error:
            new = old  # likewise kept; the answer is recorded with what was wrong in it
            reject(event.queue, f"{error}; the stored tags are kept", event.payload())
            outcome["error"] = str(error)
        commit(lambda conn: harvest.store_tags(conn, event, old, new))
        outcome["changed"] = old != new


@dramatiq.actor(queue_name=TagsHarvested.queue, actor_name=TagsHarvested.actor, **RETRY)
def reconcile_badges(*args: Any, **kwargs: Any) -> None:
    event = decode(TagsHarvested, args, kwargs)
    if event is None:
        return
    with stage("reconcile", event) as outcome, resources().pool.connection() as conn:
        result = badges.reconcile(conn, event.account_id, event.sync_id)
        if result is None:
            outcome["outcome"] = "skipped"
            return
        changes, warnings = result
        outcome.update(changes=len(changes), warnings=warnings)
