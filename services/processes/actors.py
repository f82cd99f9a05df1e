"""The workers: one actor per queue, each a thin shell around a stage function in `pipelines/`.

An actor takes the event the `StageMessages` middleware decoded, calls its stage (which
commits its state and next events together, through the outbox, and relays them), reports
the result for the log line, and asks dramatiq for a retry when the stage says the whole event
failed transiently. Retry policy sits on each actor, in `ACTORS`. Longest backoff is one
minute: far below RabbitMQ's 30-minute delivery timeout, which would otherwise close the
channel holding the delayed message.

`build(settings)` declares the broker, its middleware and the actors; each worker process's
resources are its `House` (services/bootstrap.py), opened after the fork and closed when the
process stops. Nothing connects at import; a test builds the same actors on dramatiq's
StubBroker.
"""

from __future__ import annotations

import contextvars
import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import dramatiq
from dramatiq.middleware import CurrentMessage

from orgsync.pipelines import badges, discovery, harvest, registration, validation
from orgsync.pipelines.events import LIVE, REGISTRATION_ACTOR, STAGE_BY_NAME, Event
from orgsync.pipelines.stage import Deps, Outcome, StageResult
from orgsync.services.adapters.broker import make_broker
from orgsync.services.adapters.budget import current_lane, lane
from orgsync.services.bootstrap import WORKER_POOL, House
from orgsync.services.logs import get_logger
from orgsync.services.processes import metrics
from orgsync.services.processes.fair_threads import serving
from orgsync.services.processes.health import Watchdog
from orgsync.services.processes.middleware import StageMessages, recorder
from orgsync.services.processes.work_order import LiveFirst
from orgsync.services.settings import Settings

log = get_logger("orgsync.worker")

MAX_RETRIES = 5
RETRY = {"max_retries": MAX_RETRIES, "min_backoff": 1_000, "max_backoff": 60_000}
T = TypeVar("T")


def current_stage() -> str:
    """The AWS call threads of the message this thread runs: each stage, and each lane of it,
    has threads of its own, so a live page's calls never queue behind a re-sync's."""
    message = CurrentMessage.get_current_message()
    return f"{message.actor_name}-{current_lane()}" if message else ""


def attempt() -> int:
    """1 on the first delivery, 2 on the first retry, ..."""
    message = CurrentMessage.get_current_message()
    return (message.options.get("retries", 0) if message else 0) + 1


def build(
    settings: Settings, broker: dramatiq.Broker | None = None, *, feed: bool = False
) -> dramatiq.Broker:
    """The broker with every actor declared on it (RabbitMQ's unless `broker` is given); with
    `feed`, each worker process also reads the organizations' change-event queues."""
    broker = broker or make_broker(settings.broker_url, settings.queue_type)
    house = House(
        settings, broker, pool_size=WORKER_POOL, lane=current_stage, read_ahead=prefetched
    )
    messages = StageMessages(recorder(house.connect), house.finish, MAX_RETRIES)

    class OpenResources(dramatiq.Middleware):
        """The house opens after the fork, in each worker process, and closes with it; the
        worker's threads take live work first (work_order.py)."""

        def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
            worker.work_queue = LiveFirst()

        def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
            house.start_sweeper()
            house.start_outbound()
            if feed:
                house.start_feed()

        def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
            house.close()

    broker.add_middleware(OpenResources())
    if not any(isinstance(m, CurrentMessage) for m in broker.middleware):
        broker.add_middleware(CurrentMessage())
    # before Retries: dramatiq runs after_* hooks in reverse, so it sees what Retries decided
    broker.add_middleware(metrics.StageMetrics(settings), before=dramatiq.middleware.Retries)
    broker.add_middleware(messages)
    broker.add_middleware(Watchdog(health_directory, stall_after=settings.worker_stall_after))

    def settle(result: StageResult) -> None:
        messages.report(result)
        if result.outcome is Outcome.RETRY:
            raise dramatiq.Retry(result.reason or "transient failure")

    def serve(stage: Callable[[Deps, Any], StageResult]) -> None:
        """Run `stage` on this message's event, its AWS calls in the event's lane and taking
        turns with other organizations' calls."""
        event = messages.event()
        page = event if isinstance(event, Event) else None
        with lane(page.lane if page else LIVE), serving(page.org_id if page else ""):
            settle(stage(house.deps(), event))

    def register_organization(*args: Any, **kwargs: Any) -> None:
        serve(registration.register)

    def discover_accounts(*args: Any, **kwargs: Any) -> None:
        may_retry = attempt() <= MAX_RETRIES
        serve(lambda deps, event: discovery.discover(deps, event, may_retry=may_retry))

    def validate_account(*args: Any, **kwargs: Any) -> None:
        serve(validation.validate)

    def harvest_tags(*args: Any, **kwargs: Any) -> None:
        serve(harvest.harvest)

    def reconcile_badges(*args: Any, **kwargs: Any) -> None:
        serve(badges.reconcile)

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
        dramatiq.actor(actor_name=stage.actor, queue_name=stage.queue, broker=broker, **options)(fn)
    assert STAGE_BY_NAME["registration"].actor == REGISTRATION_ACTOR
    return broker


def health_directory() -> Path | None:
    """Where this worker process reports its health for /healthz: beside its metrics, in the
    directory `StageMetrics` chose at process boot (none without worker metrics)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(directory) if directory else None


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

    # in the walk's lane: its calls wait for the budget as the stage's own would
    context = contextvars.copy_context()
    threading.Thread(
        target=context.run, args=(produce,), name="discovery-prefetch", daemon=True
    ).start()
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
