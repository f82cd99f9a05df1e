"""The composition root: every long-lived resource of a process, opened once and closed once.

Each process makes one `House` from its settings and closes it when it ends: a worker process
(after dramatiq's fork), the scheduler, the exporter, the web console, a CLI command, the demo;
a test makes one of its own. Nothing else opens a connection pool or a broker. A resource opens
on first use, so a command that only reads never connects to RabbitMQ, and `close` ends what was
opened, newest first: feed pollers, the events for other systems, the outbox sweeper, the AWS
call threads, the broker, pools.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import dramatiq
import dramatiq.errors
from psycopg_pool import ConnectionPool

from orgsync.pipelines.stage import Conn, Deps, as_is
from orgsync.services.adapters import db, relay
from orgsync.services.adapters.aws import Aws
from orgsync.services.adapters.broker import make_broker
from orgsync.services.adapters.budget import Budget
from orgsync.services.adapters.keys import ReloadingKeyring
from orgsync.services.adapters.relay import Sweeper
from orgsync.services.errors import ServiceUnavailable
from orgsync.services.logs import get_logger
from orgsync.services.processes.fair_threads import FairThreads
from orgsync.services.processes.feed_poller import Feed
from orgsync.services.processes.outbound import Outbound
from orgsync.services.settings import Settings

log = get_logger("orgsync.house")
T = TypeVar("T")

WORKER_POOL = 16  # connections of a worker process: its threads' reads and writes
BUDGET_POOL = 4  # the rate budget's own: one short statement per AWS call of every stage
OUTBOUND_POOL = 4  # events for other systems: short statements between the posts, never during


class House:
    """`broker` is the process's dramatiq broker when it has one already (the worker's, a test's
    StubBroker); otherwise one is made on first publish. `lane()` names the pool of AWS call
    threads the calling thread uses (the worker: its stage), so calls waiting on one API's rate
    budget never hold the threads of another."""

    def __init__(
        self,
        settings: Settings,
        broker: dramatiq.Broker | None = None,
        *,
        pool_size: int = 4,
        lane: Callable[[], str] = lambda: "",
        read_ahead: Callable[[Iterator[Any]], Iterator[Any]] = as_is,
    ) -> None:
        self.settings = settings
        self.pool_size = pool_size
        self.lane = lane
        self.read_ahead = read_ahead
        self._given_broker = broker
        self._lock = threading.RLock()
        self._opened: dict[str, Any] = {}
        self._closers: list[Callable[[], None]] = []

    def __enter__(self) -> House:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def own(self, name: str, open_: Callable[[], T], close: Callable[[T], Any] | None) -> T:
        """The resource `name`, opened by the first thread that asks (a worker started while its
        queues are full has all its threads asking at once) and closed with the house; a process
        keeps what only it uses here too (the exporter's sessions)."""
        with self._lock:
            if name not in self._opened:
                value = open_()
                self._opened[name] = value
                if close is not None:
                    self._closers.append(lambda: close(value))
            return self._opened[name]  # type: ignore[no-any-return]

    def close(self) -> None:
        with self._lock:
            closers, self._closers, self._opened = self._closers, [], {}
        for close in reversed(closers):
            try:
                close()
            except Exception as error:  # one resource failing to close must not keep the rest open
                log.warning("close_failed", error=str(error)[:300])

    # ---- adapters ----------------------------------------------------------------------------

    @property
    def pool(self) -> db.Pool:
        return self.own(
            "pool",
            lambda: db.open_pool(self.settings.database_url, max_size=self.pool_size),
            ConnectionPool.close,
        )

    def connect(self) -> AbstractContextManager[Conn]:
        """A pooled connection whose block commits on success."""
        return self.pool.connection()

    @property
    def broker(self) -> dramatiq.Broker:
        if self._given_broker is not None:
            return self._given_broker
        return self.own(
            "broker",
            lambda: make_broker(self.settings.broker_url, self.settings.queue_type),
            dramatiq.Broker.close,
        )

    @property
    def keyring(self) -> ReloadingKeyring:
        return self.own("keyring", lambda: ReloadingKeyring(self.settings), None)

    @property
    def aws(self) -> Aws:
        def budget() -> Budget | None:
            if not self.settings.aws_budget:
                return None
            pool = self.own(
                "budget_pool",
                lambda: db.open_pool(self.settings.database_url, max_size=BUDGET_POOL),
                ConnectionPool.close,
            )
            return Budget(pool, self.settings.aws_rates)

        return self.own("aws", lambda: Aws(budget()), None)

    # ---- publishing ----------------------------------------------------------------------------

    def relay(self, message_ids: list[str]) -> None:
        """Publish outbox rows just committed. Never raises: what it cannot publish now, the
        outbox sweeper of a worker publishes once RabbitMQ is back."""
        try:
            relay.relay(self.pool, self.broker, message_ids, self.settings.pages_in_flight)
        except Exception as error:
            log.warning("relay_deferred", events=len(message_ids), error=str(error)[:300])

    def publish(self, message_ids: list[str]) -> None:
        """Publish outbox rows just committed at a user's request: the user learns when RabbitMQ
        is away (the events wait in the outbox)."""
        try:
            relay.relay(self.pool, self.broker, message_ids, self.settings.pages_in_flight)
        except dramatiq.errors.ConnectionError as error:
            raise ServiceUnavailable(
                f"RabbitMQ is unreachable ({error}); the request is saved and a worker's outbox "
                "sweeper publishes it once RabbitMQ is back"
            ) from error

    def finish(self, message_id: str) -> None:
        """A consumer is done with this message: its organization's next page may go. Never
        raises: what PostgreSQL or RabbitMQ refuse now, the sweeper finishes later."""
        try:
            relay.finish(self.pool, self.broker, message_id, self.settings.pages_in_flight)
        except Exception as error:
            log.warning("finish_deferred", message_id=message_id, error=str(error)[:300])
            self.start_sweeper().finish_later(message_id)

    def start_sweeper(self) -> Sweeper:
        def start() -> Sweeper:
            sweeper = Sweeper(
                self.pool,
                self.broker,
                self.settings.pages_in_flight,
                stuck_after=self.settings.stuck_after,
            )
            sweeper.start()
            return sweeper

        return self.own("sweeper", start, Sweeper.stop)

    # ---- the stages ----------------------------------------------------------------------------

    def concurrently(self, call: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """`call` on every item, on the calling lane's AWS threads, in order, taking turns with
        other organizations' calls (fair_threads.py); each call sees the caller's context (the
        rate budget's lane)."""
        lane = self.lane()
        threads = self.own(
            f"aws-threads-{lane}",
            lambda: FairThreads(self.settings.aws_concurrency, f"aws-{lane}"),
            FairThreads.shutdown,
        )
        return threads.map(call, items)

    def deps(self) -> Deps:
        """What the stage functions need, on this house's resources."""

        def make() -> Deps:
            return Deps(
                connect=self.connect,
                keyring=self.keyring,
                organizations=self.aws.organizations,
                sts=self.aws.sts,
                concurrently=self.concurrently,
                read_ahead=self.read_ahead,
                relay=self.relay,
                removal_limit=self.settings.removal_limit,
                removal_min=self.settings.removal_min,
                revalidate_after=self.settings.revalidate_after,
                reharvest_after=self.settings.reharvest_after,
                assume_org_role=self.aws.assume,
                sqs_endpoint=self.aws.endpoint_url,
            )

        return self.own("deps", make, None)

    def start_feed(self) -> Feed:
        """The change-event pollers of every organization with a feed (`orgsync worker`'s
        `events` stage), stopped when the house closes."""

        def start() -> Feed:
            feed = Feed(self.deps(), self.aws.queue)
            feed.start()
            return feed

        return self.own("feed", start, Feed.close)

    def start_outbound(self) -> Outbound:
        """The events for other systems: the exchange `orgsync.changes` and the webhooks
        (processes/outbound.py), stopped when the house closes."""

        def start() -> Outbound:
            pool = self.own(  # its own: a webhook's backlog never waits for the stages' pool
                "outbound_pool",
                lambda: db.open_pool(self.settings.database_url, max_size=OUTBOUND_POOL),
                ConnectionPool.close,
            )
            outbound = Outbound(pool, self.keyring, self.settings)
            outbound.start()
            return outbound

        return self.own("outbound", start, Outbound.close)
