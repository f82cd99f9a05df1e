"""The workers: one actor per queue, each a thin shell around a stage function in `pipelines/`.

An actor takes the event the `StageMessages` middleware decoded, calls its stage (which
commits its state and next events together, through the outbox, and relays them), reports
the result for the log line, and asks dramatiq for a retry when the stage says the whole event
failed transiently. Retry policy sits on each actor, in `ACTORS`. Longest backoff is one
minute: far below RabbitMQ's 30-minute delivery timeout, which would otherwise close the
channel holding the delayed message.

`build(settings)` is the composition root: the broker, its middleware, the actors and the
per-process resources (pool, AWS clients, a bounded pool of threads for a page's AWS calls).
Nothing connects at import; a test builds the same actors on dramatiq's StubBroker.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dramatiq
from dramatiq.middleware import CurrentMessage
from psycopg_pool import ConnectionPool

from orgsync.pipelines import badges, discovery, harvest, registration, validation
from orgsync.pipelines.events import REGISTRATION_ACTOR, STAGE_BY_NAME
from orgsync.pipelines.outbox import emit
from orgsync.pipelines.request_rules import Problem
from orgsync.pipelines.stage import Deps, Outcome, StageResult
from orgsync.services.adapters import db, relay
from orgsync.services.adapters.aws import Aws
from orgsync.services.adapters.broker import make_broker
from orgsync.services.adapters.budget import Budget
from orgsync.services.adapters.keys import ReloadingKeyring
from orgsync.services.logs import get_logger
from orgsync.services.processes import metrics
from orgsync.services.processes.feed_poller import Feed
from orgsync.services.processes.health import Watchdog
from orgsync.services.processes.middleware import StageMessages, recorder
from orgsync.services.settings import Settings

log = get_logger("orgsync.worker")

MAX_RETRIES = 5
RETRY = {"max_retries": MAX_RETRIES, "min_backoff": 1_000, "max_backoff": 60_000}
T = TypeVar("T")


@dataclass
class Resources:
    """One worker process's resources, opened after the fork and shared by its threads."""

    pool: ConnectionPool
    aws: Aws
    deps: Deps
    sweeper: relay.Sweeper

    @functools.cached_property
    def feed(self) -> Feed:
        return Feed(self.deps, self.aws.queue)

    @classmethod
    def open(cls, settings: Settings, broker: dramatiq.Broker) -> Resources:
        pool = db.open_pool(settings.database_url, max_size=16)
        # a small pool of its own: the budget's short statements, one per AWS call of every
        # stage's threads, never take the connections the stages' own work needs
        budget_pool = (
            db.open_pool(settings.database_url, max_size=4) if settings.aws_budget else None
        )
        aws = Aws(Budget(budget_pool, settings.aws_rates) if budget_pool else None)
        calls: dict[str, ThreadPoolExecutor] = {}
        lock = threading.Lock()

        def concurrently(call: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
            # a pool per stage: calls waiting on one API's rate budget (AssumeRole) never hold
            # the threads another stage's API (ListTagsForResource) could be using
            message = CurrentMessage.get_current_message()
            stage = message.actor_name if message else ""
            with lock:
                if stage not in calls:
                    calls[stage] = ThreadPoolExecutor(settings.aws_concurrency, f"aws-{stage}")
            return list(calls[stage].map(call, items))

        def relay_now(message_ids: list[str]) -> None:
            try:
                relay.relay(pool, broker, message_ids)
            except Exception as error:
                # committed: the outbox keeps the events and the sweeper publishes them once
                # RabbitMQ is back; failing here would only send the message round for nothing
                log.warning("relay_deferred", events=len(message_ids), error=str(error)[:300])

        deps = Deps(
            connect=pool.connection,
            keyring=ReloadingKeyring(settings),
            organizations=aws.organizations,
            sts=aws.sts,
            concurrently=concurrently,
            read_ahead=prefetched,
            relay=relay_now,
            removal_limit=settings.removal_limit,
            removal_min=settings.removal_min,
        )
        sweeper = relay.Sweeper(pool, broker, stuck_after=settings.stuck_after)
        sweeper.start()
        return cls(pool, aws, deps, sweeper)


def attempt() -> int:
    """1 on the first delivery, 2 on the first retry, ..."""
    message = CurrentMessage.get_current_message()
    return (message.options.get("retries", 0) if message else 0) + 1


def build(
    settings: Settings, broker: dramatiq.Broker | None = None, *, feed: bool = False
) -> dramatiq.Broker:
    """The broker with every actor declared on it (RabbitMQ's unless `broker` is given); with
    `feed`, each worker process also reads the organizations' change-event queues."""
    broker = broker or make_broker(settings.broker_url)
    opened: list[Resources] = []
    opening = threading.Lock()

    def resources() -> Resources:
        # once per process, under a lock: a worker started while its queues are full has all
        # its threads asking at once, and each would otherwise open pools of its own
        if not opened:
            with opening:
                if not opened:
                    opened.append(Resources.open(settings, broker))
        return opened[0]

    messages = StageMessages(recorder(lambda: resources().pool.connection()))

    class OpenResources(dramatiq.Middleware):
        def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
            r = resources()
            if feed:
                r.feed.start()

        def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
            if feed:
                resources().feed.stop.set()

    broker.add_middleware(OpenResources())
    if not any(isinstance(m, CurrentMessage) for m in broker.middleware):
        broker.add_middleware(CurrentMessage())
    # before Retries: dramatiq runs after_* hooks in reverse, so it sees what Retries decided
    broker.add_middleware(metrics.StageMetrics(settings), before=dramatiq.middleware.Retries)
    broker.add_middleware(messages)
    broker.add_middleware(Watchdog(health_directory))

    def settle(result: StageResult) -> None:
        messages.report(result)
        if result.outcome is Outcome.RETRY:
            raise dramatiq.Retry(result.reason or "transient failure")

    def register_organization(*args: Any, **kwargs: Any) -> None:
        r = resources()
        message_id = CurrentMessage.get_current_message().message_id
        with r.pool.connection() as conn:
            if len(args) != 1 or kwargs:
                verdict = registration.reject_malformed(
                    conn, message_id, None, [Problem("request", SINGLE_ARGUMENT)]
                )
                events: list[Any] = []
            else:
                verdict, events = registration.register(
                    conn, r.deps.keyring, args[0], message_id, r.aws.assume, r.aws.endpoint_url
                )
            ids = emit(conn, events)
        r.deps.relay(ids)
        log.info(
            "registration",
            request_id=verdict.request_id,
            org_id=verdict.org_id,
            accepted=verdict.accepted,
            reasons=len(verdict.reasons),
        )

    def discover_accounts(*args: Any, **kwargs: Any) -> None:
        may_retry = attempt() <= MAX_RETRIES
        settle(discovery.discover(resources().deps, messages.event(), may_retry=may_retry))

    def validate_account(*args: Any, **kwargs: Any) -> None:
        settle(validation.validate(resources().deps, messages.event()))

    def harvest_tags(*args: Any, **kwargs: Any) -> None:
        settle(harvest.harvest(resources().deps, messages.event()))

    def reconcile_badges(*args: Any, **kwargs: Any) -> None:
        settle(badges.reconcile(resources().deps, messages.event()))

    # Within a worker, later stages run first (dramatiq: a lower priority sooner): accounts
    # already in flight reach their badges before new ones start, so a tag change shows up
    # promptly. Reconciliation keeps the default, 0.
    actors: dict[str, tuple[Callable[..., None], dict[str, Any]]] = {
        "registration": (register_organization, RETRY),
        "discovery": (discover_accounts, {"priority": 3, **RETRY}),
        "validation": (validate_account, {"priority": 2, **RETRY}),
        "harvest": (harvest_tags, {"priority": 1, **RETRY}),
        "reconcile": (reconcile_badges, RETRY),
    }
    for name, (fn, options) in actors.items():
        stage = STAGE_BY_NAME[name]
        dramatiq.actor(fn, actor_name=stage.actor, queue_name=stage.queue, broker=broker, **options)
    assert STAGE_BY_NAME["registration"].actor == REGISTRATION_ACTOR
    return broker


def health_directory() -> Path | None:
    """Where this worker process reports its health for /healthz: beside its metrics, in the
    directory `StageMetrics` chose at process boot (none without worker metrics)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(directory) if directory else None


SINGLE_ARGUMENT = "the request must be the message's single argument"


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
