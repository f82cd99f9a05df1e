"""The outbox relay: publishes what the stages committed, each organization's share at a time.

Each actor relays its own events right after its commit; a background thread in every worker
process sweeps up whatever a crash between commit and publish left behind. Two relays never
claim the same row (FOR UPDATE SKIP LOCKED); a row published twice is harmless because every
consumer is idempotent.

Fair dispatch: of one organization's pages for one queue and lane (a *share*), at most `cap`
are ready or in flight at once (ORGSYNC_PAGES_IN_FLIGHT); the rest wait in the outbox, held,
and the oldest is released when a consumer finishes one (`finish`). RabbitMQ's queues then
never hold more than `cap` pages of one organization ahead of another's: an organization with
10,000 accounts and one with 50 take turns instead of queueing in arrival order, on every
worker process and machine, because the count lives in PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dramatiq

from orgsync.pipelines import stuck
from orgsync.pipelines.outbox import emit
from orgsync.pipelines.sql import load
from orgsync.pipelines.stage import Conn
from orgsync.services.adapters.db import Pool
from orgsync.services.logs import get_logger

log = get_logger(__name__)

SQL = load("orgsync.services.adapters")

DEFAULT_CAP = 8  # pages of one organization, queue and lane ready or in flight at once
# A page in flight longer than RabbitMQ's consumer timeout (30 min) was dead-lettered, purged
# or lost with its node: its row no longer holds a place in the share.
IN_FLIGHT_EXPIRY_S = 1800.0


def relay(pool: Pool, broker: dramatiq.Broker, message_ids: Sequence[str], cap: int) -> int:
    """Publish these outbox rows now, as far as their organizations' shares allow, with any
    held rows of the same shares that now fit."""
    if not message_ids:
        return 0
    with pool.connection() as conn:
        shares = conn.execute(
            SQL["outbox_shares"], {"ids": list(message_ids), "every": False}
        ).fetchall()
        ids = list(message_ids) + release(conn, shares, cap)
        return _publish(conn, broker, SQL["claim_outbox_messages"], (ids,))


def finish(pool: Pool, broker: dramatiq.Broker, message_id: str, cap: int) -> int:
    """A consumer is done with this message: its row goes, and its share's next page is sent."""
    with pool.connection() as conn:
        conn.execute(SQL["lock_outbox_message"], (message_id,))
        done = conn.execute(SQL["finish_outbox_message"], (message_id,)).fetchone()
    if done is None:
        return 0
    with pool.connection() as conn:
        released = release(conn, [done], cap)
        return _publish(conn, broker, SQL["claim_outbox_messages"], (released,))


def release(conn: Conn, shares: Sequence[dict[str, Any]], cap: int) -> list[str]:
    """The held rows of these shares that fit under `cap` now become ready; their ids. Each
    share is counted under its lock, taken in one order so that two relays never deadlock."""
    ids: list[str] = []
    for share in sorted(shares, key=lambda s: (s["org_id"], s["queue_name"], s["lane"])):
        org, queue, lane = share["org_id"], share["queue_name"], share["lane"]
        conn.execute(SQL["lock_share"], (org, queue, lane))
        params = {"org": org, "queue": queue, "lane": lane, "cap": cap}
        rows = conn.execute(SQL["release_share"], {**params, "expiry": IN_FLIGHT_EXPIRY_S})
        ids += [row["message_id"] for row in rows]
    return ids


def sweep(
    pool: Pool, broker: dramatiq.Broker, cap: int, older_than: float = 5.0, limit: int = 500
) -> int:
    """Publish what nobody relayed (its writer died between its commit and its relay), and
    release every share that has room (its finisher died before releasing)."""
    with pool.connection() as conn:
        conn.execute(SQL["forget_expired_outbox_messages"], (IN_FLIGHT_EXPIRY_S,))
        waiting = conn.execute(SQL["outbox_shares"], {"ids": [], "every": True}).fetchall()
    published = 0
    for share in waiting:  # one transaction each: a share's lock is held only while it is sent
        with pool.connection() as conn:
            ids = release(conn, [share], cap)
            published += _publish(conn, broker, SQL["claim_outbox_messages"], (ids,))
    with pool.connection() as conn:
        published += _publish(conn, broker, SQL["claim_stale_outbox_messages"], (older_than, limit))
    return published


def _publish(conn: Conn, broker: dramatiq.Broker, query: str, params: tuple[object, ...]) -> int:
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
    # marked sent only once RabbitMQ confirmed every publish: an error rolls the claim back
    conn.execute(SQL["mark_outbox_sent"], {"ids": [r["id"] for r in rows]})
    return len(rows)


# Each publish waits for RabbitMQ's confirm before the next one goes out. A batch (a page of
# discovery's events, a sweep) is spread over a few threads, each with its own channel, so its
# confirms overlap: at 10,000 accounts, one-by-one confirms had made discovery's relay, not
# AWS, the pace of the whole sync.
PUBLISH_THREADS = 8
_publishers: ThreadPoolExecutor | None = None
_publishers_lock = threading.Lock()


def _enqueue_all(
    broker: dramatiq.Broker, messages: list[tuple[dramatiq.Message[object], int | None]]
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
        future.result()  # the first failure raises: nothing is marked sent, the sweeper retries


def redrive_stuck(pool: Pool, broker: dramatiq.Broker, bound: float, cap: int) -> int:
    """Re-drive syncs stalled for `bound` seconds (pipelines/stuck.py); one process at a time."""
    with pool.connection() as conn:
        redrives = stuck.sweep(conn, bound)
        ids = emit(conn, [e for r in redrives or () for e in r.events])
    for r in redrives or ():
        log.warning(
            "sync_redriven", org_id=r.org_id, sync_id=r.sync_id, events=len(r.events), walk=r.walk
        )
    return relay(pool, broker, ids, cap)


class Sweeper(threading.Thread):
    def __init__(
        self,
        pool: Pool,
        broker: dramatiq.Broker,
        cap: int,
        interval: float = 2.0,
        stuck_after: float | None = None,
    ) -> None:
        super().__init__(name="outbox-sweeper", daemon=True)
        self.pool, self.broker, self.cap, self.interval = pool, broker, cap, interval
        self.stuck_after = stuck_after
        self.stopped = threading.Event()
        self._unfinished: list[str] = []  # finishes that could not reach PostgreSQL
        self._unfinished_lock = threading.Lock()

    def finish_later(self, message_id: str) -> None:
        """A message its consumer is done with, whose row could not be finished now: the next
        passes try again (else the row would hold a place in its share until it expires)."""
        with self._unfinished_lock:
            self._unfinished.append(message_id)

    def _finish_pending(self) -> None:
        with self._unfinished_lock:
            pending, self._unfinished = self._unfinished, []
        for n, message_id in enumerate(pending):
            try:
                finish(self.pool, self.broker, message_id, self.cap)
            except Exception:
                with self._unfinished_lock:
                    self._unfinished.extend(pending[n:])
                raise

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
                self._finish_pending()
                if n := sweep(self.pool, self.broker, self.cap):
                    log.info("outbox_swept", published=n)
                if self.stuck_after and time.monotonic() >= next_stuck:
                    next_stuck = time.monotonic() + every
                    redrive_stuck(self.pool, self.broker, self.stuck_after, self.cap)
            except Exception as error:  # a dead broker or database: try again next round
                log.warning("outbox_sweep_failed", error=str(error))
