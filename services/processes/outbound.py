"""Events for other systems, in every worker process: two threads and a pool.

- The exchange thread publishes new events to `orgsync.changes` (adapters/change_exchange.py).
- The dispatcher thread announces finished syncs, fans new events out into one delivery per
  matching webhook, and hands each webhook with due deliveries to the pool, one batch at a time.

A webhook is served by at most one thread of a process at a time, in the order of its events,
and a failed try ends its batch (the rest wait with it), so a slow or dead receiver holds one
thread for one timeout, never another receiver's deliveries, and never the pipeline, whose
stages only ever write rows. Processes share the work through PostgreSQL: a batch is leased
(`leased_until`) with SKIP LOCKED, and a lease a dead process held expires.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from orgsync.pipelines import webhooks
from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.outbound import cloud_event, encode
from orgsync.pipelines.sql import load
from orgsync.services.adapters.change_exchange import ExchangePublisher
from orgsync.services.adapters.db import Pool
from orgsync.services.adapters.webhook_http import Poster
from orgsync.services.logs import get_logger
from orgsync.services.settings import Settings
from orgsync.services.use_cases.webhooks import secret_key

log = get_logger("orgsync.outbound")
SQL = load("orgsync.services.adapters")

INTERVAL = 0.25  # seconds between looks for new events when there were none
SYNC_CHECK_EVERY = 2.0  # seconds between looks for finished syncs
FORGET_EVERY = 3600.0  # seconds between sweeps of old events
KEEP_DAYS = 30  # events (and their deliveries) are kept a month, far past any retry
FAN_OUT_BATCH = 1000
DELIVERY_BATCH = 100
SERVE_FOR = 5.0  # seconds a thread keeps serving one webhook's backlog


class Outbound:
    def __init__(self, pool: Pool, keyring: Keyring, settings: Settings) -> None:
        self.pool, self.keyring, self.settings = pool, keyring, settings
        self.stopped = threading.Event()
        self.publisher = ExchangePublisher(settings.broker_url)
        self.posters = ThreadPoolExecutor(settings.webhook_threads, "webhook-post")
        self.busy: set[str] = set()
        self.busy_lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._loop, args=(self.publish,), name="events-exchange"),
            threading.Thread(target=self._loop, args=(self.dispatch,), name="webhook-dispatch"),
        ]
        self.next_sync_check = 0.0
        self.next_forget = time.monotonic() + FORGET_EVERY

    def start(self) -> None:
        for thread in self.threads:
            thread.daemon = True
            thread.start()

    def close(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            if thread.is_alive():
                thread.join(timeout=10)
        self.posters.shutdown(wait=False, cancel_futures=True)
        self.publisher.close()

    def _loop(self, work: Any) -> None:
        while not self.stopped.is_set():
            try:
                more = work()
            except Exception as error:  # PostgreSQL or RabbitMQ away: try again shortly
                log.warning("outbound_failed", step=work.__name__, error=str(error)[:300])
                if work == self.publish:
                    self.publisher.close()
                more = False
                self.stopped.wait(2.0)
            if not more:
                self.stopped.wait(INTERVAL)

    def publish(self) -> bool:
        """One batch to the exchange; True when there may be more."""
        return self.publisher.publish_pending(self.pool) > 0

    def dispatch(self) -> bool:
        if time.monotonic() >= self.next_sync_check:
            self.next_sync_check = time.monotonic() + SYNC_CHECK_EVERY
            with self.pool.connection() as conn:
                conn.execute(SQL["announce_completed_syncs"])
        if time.monotonic() >= self.next_forget:
            self.next_forget = time.monotonic() + FORGET_EVERY
            with self.pool.connection() as conn:
                conn.execute(SQL["forget_old_events"], (KEEP_DAYS,))
        with self.pool.connection() as conn:
            # deliveries made: while events keep coming for webhooks, look again at once
            fanned = conn.execute(SQL["fan_out_events"], {"limit": FAN_OUT_BATCH}).rowcount
            due = [r["webhook_id"] for r in conn.execute(SQL["webhooks_with_due_deliveries"])]
        for webhook_id in due:
            with self.busy_lock:
                if webhook_id in self.busy:
                    continue
                self.busy.add(webhook_id)
            self.posters.submit(self._serve, webhook_id)
        return fanned > 0

    def _serve(self, webhook_id: str) -> None:
        """Batches of one webhook while they are full and all delivered, for a few seconds at
        most: then the thread goes back to the pool, for other webhooks' turns."""
        try:
            until = time.monotonic() + SERVE_FOR
            while not self.stopped.is_set() and time.monotonic() < until:
                claimed, delivered = deliver_batch(
                    self.pool, self.keyring, self.settings, webhook_id, self.stopped
                )
                if claimed < DELIVERY_BATCH or delivered < claimed:
                    break
        except Exception as error:
            log.warning("webhook_batch_failed", webhook_id=webhook_id, error=str(error)[:300])
        finally:
            with self.busy_lock:
                self.busy.discard(webhook_id)


def deliver_batch(
    pool: Pool,
    keyring: Keyring,
    settings: Settings,
    webhook_id: str,
    stopped: threading.Event | None = None,
) -> tuple[int, int]:
    """Try one webhook's due deliveries in the order of their events, until one fails (or the
    process stops, or the lease is half gone: the rest are handed back untried); returns how
    many were claimed and how many delivered."""
    timeout = settings.webhook_timeout
    lease = timeout * 2 + 10
    with pool.connection() as conn:
        hook = conn.execute(SQL["webhook_for_delivery"], (webhook_id,)).fetchone()
        claimed = conn.execute(
            SQL["claim_due_deliveries"],
            {"webhook": webhook_id, "lease": lease, "limit": DELIVERY_BATCH},
        ).fetchall()
        seqs = [c["event_seq"] for c in claimed]
        events = {r["seq"]: r for r in conn.execute(SQL["events_by_seq"], (seqs,))}
    if hook is None or not claimed:
        return 0, 0
    key = secret_key(keyring, hook)
    poster = Poster(hook["url"], timeout)
    delivered: list[tuple[int, int]] = []
    done = 0
    started = time.monotonic()
    claimed.sort(key=lambda c: c["event_seq"])
    try:
        for n, delivery in enumerate(claimed):
            event = cloud_event(events[delivery["event_seq"]])
            body = encode(event)
            answer = poster.post(body, webhooks.headers(key, event["id"], int(time.time()), body))
            if webhooks.delivered(answer.status):
                delivered.append((delivery["delivery_id"], answer.status or 0))
            else:
                rest = [c["delivery_id"] for c in claimed[n + 1 :]]
                _failed(pool, settings, delivery, answer.status, answer.error, rest)
                log.info(
                    "webhook_try_failed",
                    webhook_id=webhook_id,
                    delivery_id=delivery["delivery_id"],
                    status=answer.status,
                    error=answer.error,
                )
                break
            late = time.monotonic() - started > lease / 2  # the lease must outlast the batch
            if late or (stopped is not None and stopped.is_set()):
                rest = [c["delivery_id"] for c in claimed[n + 1 :]]
                _record_delivered(pool, delivered)
                done, delivered = done + len(delivered), []
                with pool.connection() as conn:
                    conn.execute(SQL["defer_untried"], (0, rest))
                break
    finally:
        poster.close()
        _record_delivered(pool, delivered)
    return len(claimed), done + len(delivered)


def _record_delivered(pool: Pool, delivered: list[tuple[int, int]]) -> None:
    if delivered:
        with pool.connection() as conn:
            ids, statuses = zip(*delivered, strict=True)
            conn.execute(SQL["record_delivered"], (list(ids), list(statuses)))


def _failed(
    pool: Pool,
    settings: Settings,
    delivery: dict[str, Any],
    status: int | None,
    error: str | None,
    rest: list[int],
) -> None:
    wait = webhooks.retry_after(delivery["attempts"] + 1, settings.webhook_first_retry)
    with pool.connection() as conn:
        conn.execute(
            SQL["record_failed_try"],
            {
                "delivery": delivery["delivery_id"],
                "status": status,
                "error": error or f"HTTP {status}",
                "wait": wait,
                "retry_for": settings.webhook_retry_for,
            },
        )
        if rest:
            conn.execute(SQL["defer_untried"], (wait, rest))
