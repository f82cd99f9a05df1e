"""The outbox relay: publishes what the stages committed, then forgets it.

Each actor relays its own events right after its commit; a background thread in every worker
process sweeps up whatever a crash between commit and publish left behind. Two relays never
claim the same row (FOR UPDATE SKIP LOCKED); a row published twice is harmless because every
consumer is idempotent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from psycopg_pool import ConnectionPool

from orgsync.pipelines import stuck
from orgsync.pipelines.outbox import emit
from orgsync.services.logs import get_logger

log = get_logger(__name__)

DELAY_MS = "greatest(0, extract(epoch FROM deliver_at - now()) * 1000)::bigint AS delay_ms"
CLAIM_IDS = f"""
SELECT id, message_id, queue_name, actor_name, payload, {DELAY_MS} FROM outbox
WHERE message_id = ANY(%s) ORDER BY id FOR UPDATE SKIP LOCKED
"""
CLAIM_STALE = f"""
SELECT id, message_id, queue_name, actor_name, payload, {DELAY_MS} FROM outbox
WHERE created_at < now() - make_interval(secs => %s) ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
"""


def relay(pool: ConnectionPool, broker: RabbitmqBroker, message_ids: Sequence[str]) -> int:
    """Publish these outbox rows now (those no other relay holds)."""
    return _publish(pool, broker, CLAIM_IDS, (list(message_ids),)) if message_ids else 0


def sweep(
    pool: ConnectionPool, broker: RabbitmqBroker, older_than: float = 5.0, limit: int = 500
) -> int:
    """Publish rows that nobody relayed: their writer died between its commit and its relay."""
    return _publish(pool, broker, CLAIM_STALE, (older_than, limit))


def _publish(pool: ConnectionPool, broker: RabbitmqBroker, query: str, params: tuple) -> int:
    with pool.connection() as conn:
        rows = conn.execute(query, params).fetchall()
        _enqueue_all(
            broker,
            [
                (
                    dramatiq.Message(
                        queue_name=row["queue_name"],
                        actor_name=row["actor_name"],
                        args=(row["payload"],),
                        kwargs={},
                        options={},
                        message_id=row["message_id"],
                    ),
                    row["delay_ms"] or None,
                )
                for row in rows
            ],
        )
        # deleted only once RabbitMQ confirmed every publish: an error rolls the claim back
        conn.execute("DELETE FROM outbox WHERE id = ANY(%s)", ([r["id"] for r in rows],))
    return len(rows)


# Each publish waits for RabbitMQ's confirm before the next one goes out. A batch (a page of
# discovery's events, a sweep) is spread over a few threads, each with its own channel, so its
# confirms overlap: at 10,000 accounts, one-by-one confirms had made discovery's relay, not
# AWS, the pace of the whole sync.
PUBLISH_THREADS = 8
_publishers: ThreadPoolExecutor | None = None
_publishers_lock = threading.Lock()


def _enqueue_all(
    broker: RabbitmqBroker, messages: list[tuple[dramatiq.Message[object], int | None]]
) -> None:
    """Publish (message, delay in ms or None) pairs; a delayed one goes to its delay queue."""
    global _publishers
    if len(messages) <= 1:
        for message, delay in messages:
            broker.enqueue(message, delay=delay)
        return
    with _publishers_lock:
        if _publishers is None:  # created after the worker's fork, on first use
            _publishers = ThreadPoolExecutor(PUBLISH_THREADS, "outbox-publish")
    publishing = [_publishers.submit(broker.enqueue, m, delay=delay) for m, delay in messages]
    for future in publishing:
        future.result()  # the first failure raises: nothing is deleted, the sweeper retries


def redrive_stuck(pool: ConnectionPool, broker: RabbitmqBroker, bound: float) -> int:
    """Re-drive syncs stalled for `bound` seconds (pipelines/stuck.py); one process at a time."""
    with pool.connection() as conn:
        redrives = stuck.sweep(conn, bound)
        ids = emit(conn, [e for r in redrives or () for e in r.events])
    for r in redrives or ():
        log.warning(
            "sync_redriven", org_id=r.org_id, sync_id=r.sync_id, events=len(r.events), walk=r.walk
        )
    return relay(pool, broker, ids)


class Sweeper(threading.Thread):
    def __init__(
        self,
        pool: ConnectionPool,
        broker: RabbitmqBroker,
        interval: float = 2.0,
        stuck_after: float | None = None,
    ) -> None:
        super().__init__(name="outbox-sweeper", daemon=True)
        self.pool, self.broker, self.interval = pool, broker, interval
        self.stuck_after = stuck_after
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()
        if self.is_alive():
            self.join(timeout=10)

    def run(self) -> None:
        # a stall is looked for a few times per bound, at most every `interval`
        every = max(self.interval, min((self.stuck_after or 0) / 4, 60.0))
        next_stuck = time.monotonic() + every
        while not self.stopped.wait(self.interval):
            try:
                if n := sweep(self.pool, self.broker):
                    log.info("outbox_swept", published=n)
                if self.stuck_after and time.monotonic() >= next_stuck:
                    next_stuck = time.monotonic() + every
                    redrive_stuck(self.pool, self.broker, self.stuck_after)
            except Exception as error:  # a dead broker or database: try again next round
                log.warning("outbox_sweep_failed", error=str(error))
