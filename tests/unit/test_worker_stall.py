"""The stall rule behind a worker's /healthz: stalled once messages have waited for its threads
ORGSYNC_WORKER_STALL_AFTER seconds, without a break, and no thread made progress meanwhile."""

from __future__ import annotations

import json
import os
import queue
from pathlib import Path
from typing import Any

import pytest

from orgsync.pipelines.discovery_walk import Walks
from orgsync.services.processes import health
from orgsync.services.processes.health import Stall, Watchdog
from orgsync.services.settings import Settings, SettingsError

AFTER = 300.0


def test_messages_waiting_with_no_progress_for_the_set_time_are_a_stall() -> None:
    stall = Stall(AFTER, progress_at=0.0)
    assert stall.observe(3, now=100.0) == 0.0  # waiting from now on
    assert not stall.stalled(stall.observe(3, now=399.0))
    assert stall.stalled(stall.observe(3, now=400.0))


def test_nothing_waiting_is_never_a_stall_however_long_the_threads_run() -> None:
    stall = Stall(AFTER, progress_at=0.0)
    assert stall.observe(0, now=10_000.0) == 0.0


def test_work_arriving_after_a_long_idle_is_no_stall_until_it_has_waited_the_set_time() -> None:
    stall = Stall(AFTER, progress_at=0.0)
    stall.observe(0, now=5_000.0)
    assert stall.observe(1, now=5_002.0) == 0.0
    assert stall.observe(1, now=5_200.0) == 198.0


def test_progress_starts_the_count_again() -> None:
    stall = Stall(AFTER, progress_at=0.0)
    stall.observe(2, now=0.0)
    stall.progressed(250.0)
    assert stall.observe(2, now=400.0) == 150.0


def test_a_break_in_the_waiting_starts_the_count_again() -> None:
    stall = Stall(AFTER, progress_at=0.0)
    stall.observe(2, now=0.0)
    stall.observe(0, now=290.0)
    assert stall.observe(2, now=400.0) == 0.0


class Consumer:
    def __init__(self) -> None:
        self.delay_queue: queue.Queue[Any] = queue.Queue()

    def is_alive(self) -> bool:
        return True


class Worker:
    """What the watchdog reads of a dramatiq worker: threads, consumers, the work queue."""

    def __init__(self, prefetched: int = 0) -> None:
        self.workers: list[Any] = []
        self.consumers = {"account-discovered": Consumer(), "account-discovered.DQ": Consumer()}
        self.work_queue: queue.Queue[Any] = queue.Queue()
        for n in range(prefetched):
            self.work_queue.put(n)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def watchdog(tmp_path: Path, clock: Clock, walks: Walks, queued: list[str]) -> Watchdog:
    def in_rabbitmq(broker: Any, queues: Any) -> int:
        queued.extend(queues)
        return 4

    dog = Watchdog(
        lambda: tmp_path, stall_after=AFTER, queued=in_rabbitmq, walks=walks, clock=clock
    )
    dog.broker = object()  # type: ignore[assignment]
    return dog


def healthz(tmp_path: Path) -> tuple[int, dict[str, Any]]:
    status, _, body = health.healthz(tmp_path)
    return status, json.loads(body)


def test_healthz_says_stalled_when_prefetched_messages_waited_and_no_thread_finished_any(
    tmp_path: Path,
) -> None:
    clock, walks, asked = Clock(), Walks(), []
    dog = watchdog(tmp_path, clock, walks, asked)
    worker: Any = Worker(prefetched=2)
    assert dog.check(worker) and healthz(tmp_path)[0] == 200
    clock.now += AFTER
    dog.check(worker)
    status, body = healthz(tmp_path)
    assert status == 503
    assert body["problems"] == [
        f"process {os.getpid()}: stalled, no message finished and no walk page read for 300 s"
        " while 2 message(s) waited for its threads (ORGSYNC_WORKER_STALL_AFTER=300s)"
    ]
    assert asked == []  # prefetched messages say enough: RabbitMQ is not asked


def test_a_walk_reading_pages_is_progress_though_it_finishes_no_message(tmp_path: Path) -> None:
    clock, walks, asked = Clock(), Walks(), []
    dog = watchdog(tmp_path, clock, walks, asked)
    worker: Any = Worker(prefetched=2)
    dog.check(worker)
    for _ in range(10):
        clock.now += AFTER / 5
        walks.page_read()
        dog.check(worker)
    assert healthz(tmp_path)[0] == 200


def test_ready_messages_in_rabbitmq_count_only_while_the_process_holds_messages(
    tmp_path: Path,
) -> None:
    clock, walks, asked = Clock(), Walks(), []
    dog = watchdog(tmp_path, clock, walks, asked)
    worker: Any = Worker()
    dog.check(worker)
    clock.now += 2 * AFTER
    dog.check(worker)  # idle: RabbitMQ would be delivering what it has
    assert asked == [] and healthz(tmp_path)[0] == 200

    dog.before_process_message(None, None)  # type: ignore[arg-type]  # a thread on a message
    dog.check(worker)
    assert asked == ["account-discovered"]  # the queue itself, not its .DQ
    clock.now += AFTER
    dog.check(worker)
    status, body = healthz(tmp_path)
    assert status == 503 and "while 4 message(s) waited" in body["problems"][0]


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0", "1e3", "4", "2h"])
def test_a_grace_period_that_is_not_a_finite_duration_within_bounds_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="ORGSYNC_WORKER_GRACE="):
        Settings.from_env({"ORGSYNC_WORKER_GRACE": value})


def test_the_grace_period_and_the_stall_time_read_as_durations() -> None:
    settings = Settings.from_env(
        {"ORGSYNC_WORKER_GRACE": "45s", "ORGSYNC_WORKER_STALL_AFTER": "2m"}
    )
    assert (settings.worker_grace, settings.worker_stall_after) == (45.0, 120.0)
    assert (Settings().worker_grace, Settings().worker_stall_after) == (30.0, 300.0)
