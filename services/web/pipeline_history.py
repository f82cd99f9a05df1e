"""The last hour of the pipeline, for the Pipeline page's charts: each queue's depth and the
accounts reconciled per second.

Queue depth exists only as it is now (RabbitMQ keeps no history, and the outbox's held pages
are a count), so a thread of `orgsync web` samples it every SAMPLE_S seconds and keeps the last
hour in memory: the chart starts when the console does (Prometheus keeps the long history, see
docs/operations.md). Throughput is read back from PostgreSQL: on start, the last hour per minute
from the accounts' `stage_at`; then the accounts reconciled since the previous sample.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orgsync.pipelines.sql import load
from orgsync.services.adapters import queues
from orgsync.services.bootstrap import House
from orgsync.services.logs import get_logger
from orgsync.services.read_models import dispatch

SQL = load("orgsync.services.web")
SAMPLE_S = 15.0
SPAN_S = 3600.0
STOP_WAIT_S = 15.0
log = get_logger("orgsync.web.history")


@dataclass(frozen=True)
class Sample:
    at: float  # time.time()
    depths: dict[str, int]  # queue -> ready + delayed + held (None where it was not read)
    accounts_per_s: float | None


class PipelineHistory:
    def __init__(self, house: House, clock: Callable[[], float] = time.time) -> None:
        self.house = house
        self.clock = clock
        self.samples: deque[Sample] = deque(maxlen=round(SPAN_S / SAMPLE_S) + 1)
        self.backfill: list[tuple[float, float]] = []  # (at, accounts/s) per minute, from start
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="pipeline-history", daemon=True)
        self.last_count_at: float | None = None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop sampling, and wait for a sample under way (bounded by the broker's and the
        database's connect timeouts) so that nothing outlives the console."""
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout=STOP_WAIT_S)

    def run(self) -> None:
        try:
            self.backfill = self.per_minute()
        except Exception as error:  # the page says nothing yet; samples follow
            log.warning("history_backfill_failed", error=str(error)[:300])
        while not self.stopped.is_set():
            try:
                self.sample()
            except Exception as error:  # RabbitMQ or PostgreSQL away: a gap in the chart
                log.warning("history_sample_failed", error=str(error)[:300])
            self.stopped.wait(SAMPLE_S)

    def per_minute(self) -> list[tuple[float, float]]:
        with self.house.connect() as conn:
            rows = conn.execute(
                SQL["reconciled_per_minute"], {"span": SPAN_S, "scope": None}
            ).fetchall()
        return [(row["minute"].timestamp() + 60, row["n"] / 60.0) for row in rows]

    def sample(self) -> Sample:
        now = self.clock()
        settings = self.house.settings
        depths: dict[str, int] = {}
        rows = queues.depths(settings.broker_url)
        with self.house.connect() as conn:
            queues.add_outbox(rows, dispatch.shares(conn))
            since = self.last_count_at or now - SAMPLE_S
            row = conn.execute(SQL["reconciled_since"], (since,)).fetchone()
        for queue in rows:
            depths[queue["queue"]] = sum(queue.get(k) or 0 for k in ("ready", "delayed", "held"))
        rate = (row["n"] if row else 0) / max(now - since, 1.0)
        self.last_count_at = now
        taken = Sample(now, depths, rate)
        with self.lock:
            self.samples.append(taken)
        return taken

    def series(self) -> tuple[dict[str, list[tuple[float, float]]], dict[str, Any]]:
        """(queue depth by queue, accounts per second) as (seconds ago, value) points."""
        now = self.clock()
        with self.lock:
            samples = list(self.samples)
        depth: dict[str, list[tuple[float, float]]] = {}
        for sample in samples:
            for queue, value in sample.depths.items():
                depth.setdefault(queue, []).append((now - sample.at, float(value)))
        first = samples[0].at if samples else now
        rate = [(now - at, value) for at, value in self.backfill if at < first]
        rate += [(now - s.at, s.accounts_per_s or 0.0) for s in samples]
        return depth, {"accounts/s": [p for p in rate if p[0] <= SPAN_S]}
