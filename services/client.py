"""What the CLI and the demo do through the pipeline's front doors: publish, start, wait."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
import dramatiq.errors
import pika
import pika.exceptions

from orgsync.pipelines import validation
from orgsync.pipelines.events import (
    REGISTRATION_ACTOR,
    REGISTRATION_QUEUE,
    AccountsDiscovered,
    Event,
    MalformedEvent,
)
from orgsync.pipelines.idempotency import conflict_id, request_digest, same_request
from orgsync.pipelines.outbox import emit
from orgsync.pipelines.registration import Verdict, decided, start_sync
from orgsync.services import db, relay, views
from orgsync.services.broker import connect, make_broker, publish
from orgsync.services.errors import ServiceUnavailable, UserError
from orgsync.services.settings import Settings


def registration_message(request: dict[str, Any]) -> dramatiq.Message[Any]:
    """The dramatiq envelope of a request, with a message id derived from its request id."""
    return dramatiq.Message(
        queue_name=REGISTRATION_QUEUE,
        actor_name=REGISTRATION_ACTOR,
        args=(request,),
        kwargs={},
        options={},
        message_id=f"registration:{request['request_id']}",
    )


def submit(settings: Settings, request: dict[str, Any]) -> None:
    broker = make_broker(settings.broker_url)
    try:
        publish(broker, settings.broker_url, registration_message(request))
    finally:
        broker.close()


def wait_for(poll: Callable[[], Any], timeout: float, message: str) -> Any:
    """Poll until `poll` returns something other than None, or fail with `message`."""
    deadline = time.monotonic() + timeout
    while (result := poll()) is None:
        if time.monotonic() > deadline:
            raise UserError(message)
        time.sleep(0.25)
    return result


def wait_verdict(
    settings: Settings, request_id: str, timeout: float, request: object = None
) -> Verdict:
    """The verdict on `request_id`; given the `request` that was sent, the verdict on that
    request: a rejection when the id had been used for another one (pipelines.idempotency)."""
    digest = None if request is None else request_digest(request_id, request)

    def poll() -> Verdict | None:
        with db.connect(settings.database_url) as conn:
            verdict = decided(conn, request_id)
            if verdict is None or digest is None or same_request(conn, request_id, digest):
                return verdict
            return decided(conn, conflict_id(request_id, digest))

    return wait_for(
        poll,
        timeout,
        f"no verdict on request {request_id} after {timeout:.0f} s: "
        "is a worker running (`orgsync worker`)?",
    )


def relay_now(settings: Settings, conn: Any, events: list[Event]) -> None:
    """Commit `events` through the outbox, then publish them at once."""
    with conn.transaction():
        ids = emit(conn, events)
    broker = make_broker(settings.broker_url)
    pool = db.open_pool(settings.database_url, max_size=1)
    try:
        relay.relay(pool, broker, ids)
    except dramatiq.errors.ConnectionError as error:
        raise ServiceUnavailable(
            f"RabbitMQ is unreachable ({error}); the request is saved and a worker's outbox "
            "sweeper publishes it once RabbitMQ is back"
        ) from error
    finally:
        pool.close()
        broker.close()


def sync(
    settings: Settings, org_id: str, trigger: str = "manual", *, confirm_removals: bool = False
) -> str:
    with db.connect(settings.database_url) as conn:
        with conn.transaction():
            event = start_sync(conn, org_id, trigger, confirm_removals=confirm_removals)
        relay_now(settings, conn, [event])
    return event.sync_id


def progress(settings: Settings, sync_id: str) -> dict[str, Any]:
    with db.connect(settings.database_url) as conn:
        return views.sync_progress(conn, sync_id)


def wait_sync(
    settings: Settings,
    sync_id: str,
    timeout: float,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    def poll() -> dict[str, Any] | None:
        state = progress(settings, sync_id)
        if on_progress:
            on_progress(state)
        return state if views.sync_finished(state) else None

    return wait_for(poll, timeout, f"sync {sync_id} not finished after {timeout:.0f} s")


def latest_sync(settings: Settings, org_id: str) -> str | None:
    with db.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT sync_id::text AS id FROM syncs WHERE org_id = %s"
            " ORDER BY started_at DESC LIMIT 1",
            (org_id,),
        ).fetchone()
    return None if row is None else row["id"]


# ---- retry-failed: the one re-drive path, for `orgsync retry-failed` and the demo -------------

DEAD_LETTERS = f"{AccountsDiscovered.queue}.XQ"  # where dramatiq puts validations it gave up on


@dataclass(frozen=True)
class Redriven:
    failed: int  # accounts from the failures table
    dead_lettered: int  # accounts taken back from validations in the dead-letter queue
    stale: int  # dead letters whose account has moved on: acked, since nothing waits for them
    left: int  # dead letters left in the queue: unreadable, or outside the filters
    dry_run: bool

    @property
    def queued(self) -> int:
        return self.failed + self.dead_lettered

    def describe(self) -> str:
        text = f"{'would queue' if self.dry_run else 'queued'} {self.queued} account(s)"
        text += " for validation"
        if self.dead_lettered or self.stale or self.left:
            text += (
                f" ({self.dead_lettered} from {DEAD_LETTERS}); {DEAD_LETTERS}: "
                f"{self.stale} stale dead letter(s) {'to drop' if self.dry_run else 'dropped'}"
                f" (their account has moved on), {self.left} left in place"
                " (unreadable, or outside --org/--account/--code)"
            )
        return text


def retry_failed(
    settings: Settings,
    org_id: str | None,
    account_id: str | None = None,
    code: str | None = None,
    dry_run: bool = False,
) -> Redriven:
    """Validate failed accounts again, each in a new message with a fresh retry budget.

    Two sources: the failures table, and validation messages dead-lettered without an
    outcome (a worker error that outlasted the retries). A dry run does the same work in a
    transaction it rolls back, and leaves every dead letter where it was.
    """
    token = f"retry-{uuid.uuid4().hex[:12]}"
    with db.connect(settings.database_url) as conn, DeadLetters(settings.broker_url) as letters:
        with conn.transaction(force_rollback=dry_run):
            # dead letters first: the failed accounts' stage resets would make them look due
            events, settle, stale, left = _redrive_dead_letters(
                conn, letters, token, org_id, account_id, code
            )
            failed = validation.redrive(conn, token, org_id, account_id, code)
            emit(conn, [*events, *failed])
        result = Redriven(_accounts(failed), _accounts(events), stale, left, dry_run)
        if dry_run:
            return result
        letters.ack(settle)  # only once the re-driven events are committed
        # emit() again is a no-op on the committed outbox rows; it hands their ids to the relay
        relay_now(settings, conn, [*events, *failed])
    return result


def _accounts(events: list[AccountsDiscovered]) -> int:
    return sum(len(e.account_ids) for e in events)


def _redrive_dead_letters(
    conn: Any,
    letters: DeadLetters,
    token: str,
    org_id: str | None,
    account_id: str | None,
    code: str | None,
) -> tuple[list[AccountsDiscovered], list[int], int, int]:
    events: dict[str, AccountsDiscovered] = {}
    settle: list[int] = []
    stale = left = 0
    for tag, body in letters.take():
        dead = _dead_event(body)
        # a dead letter carries no AWS error code, so --code never selects one
        if dead is None or code or org_id not in (None, dead.org_id):
            left += 1
            continue
        if account_id is not None:
            if account_id not in dead.account_ids:
                left += 1
                continue
            # that account alone goes; the letter stays for the rest of its page
            dead = dataclasses.replace(dead, account_ids=(account_id,))
            left += 1
        else:
            settle.append(tag)
        fresh = validation.redrive_dead_letter(conn, dead, token)
        if fresh is None:
            stale += 1
        else:
            events[fresh.message_id] = fresh
    return list(events.values()), settle, stale, left


def _dead_event(body: bytes) -> AccountsDiscovered | None:
    try:
        args = json.loads(body)["args"]
        event = AccountsDiscovered.from_payload(args[0] if len(args) == 1 else None)
    except (ValueError, KeyError, TypeError, IndexError, MalformedEvent):
        return None
    return event if isinstance(event, AccountsDiscovered) else None


class DeadLetters:
    """The validation dead-letter queue, read with basic_get: every message taken stays unacked
    until `ack`, and closing the connection puts the rest back where they were."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self.connection: Any = None
        self.channel: Any = None

    def __enter__(self) -> DeadLetters:
        self.connection = connect(self.broker_url)
        self.channel = self.connection.channel()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.connection.is_open:
            self.connection.close()

    def count(self) -> int:
        """Ready dead letters (a passive declare; 0 before any worker declared the queue)."""
        try:
            frame = self.channel.queue_declare(queue=DEAD_LETTERS, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            self.channel = self.connection.channel()
            return 0
        return int(frame.method.message_count)

    def take(self) -> list[tuple[int, bytes]]:
        taken = []
        for _ in range(self.count()):  # bounded: never chase messages arriving meanwhile
            method, _properties, body = self.channel.basic_get(DEAD_LETTERS, auto_ack=False)
            if method is None:
                break
            taken.append((method.delivery_tag, body))
        return taken

    def ack(self, tags: list[int]) -> None:
        for tag in tags:
            self.channel.basic_ack(tag)


def dead_letter_count(settings: Settings) -> int:
    with DeadLetters(settings.broker_url) as letters:
        return letters.count()
