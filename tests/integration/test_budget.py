"""The rate budget on real PostgreSQL: processes share it, and AWS clients wait on it."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from services import db
from services.budget import Budget

pytestmark = pytest.mark.integration

RATE = 20.0  # calls/s, floor = ceiling: no adaptation, only the bucket
CALLS_EACH = 30


def call_at_budget_pace(database_url: str, calls: int, times: Any) -> None:
    """One worker process: `calls` calls, each sent when the shared budget says so."""
    pool = db.open_pool(database_url, max_size=2)
    try:
        budget = Budget(pool, {"*": (RATE, RATE)})
        for _ in range(calls):
            _, wait = budget.acquire("o-shared", "ListTagsForResource")
            time.sleep(wait)
            times.put(time.time())
    finally:
        pool.close()


def test_two_processes_sharing_one_budget_together_stay_under_its_rate(
    database_url: str,
) -> None:
    spawn = multiprocessing.get_context("spawn")
    times = spawn.Queue()
    workers = [
        spawn.Process(target=call_at_budget_pace, args=(database_url, CALLS_EACH, times))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    sent = sorted(times.get(timeout=60) for _ in range(2 * CALLS_EACH))
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0

    # a second of tokens may go at once; after that, RATE a second between both processes
    burst = int(RATE)
    assert sent[-1] - sent[0] >= (2 * CALLS_EACH - burst) / RATE * 0.95
    for i, start in enumerate(sent):
        in_window = sum(1 for t in sent[i:] if t < start + 1.0)
        assert in_window <= burst + RATE + 1
    with db.connect(database_url) as conn:
        row = conn.execute("SELECT calls, throttled, rate FROM aws_budgets").fetchone()
    assert row == {"calls": 2 * CALLS_EACH, "throttled": 0, "rate": RATE}


def test_a_throttle_seen_by_one_process_lowers_the_rate_another_process_gets(
    database_url: str,
) -> None:
    rates = {"*": (1.0, 40.0)}
    with (
        db.open_pool(database_url, max_size=2) as first_pool,
        db.open_pool(database_url, max_size=2) as second_pool,
    ):
        first, second = Budget(first_pool, rates), Budget(second_pool, rates)
        ticket, _ = first.acquire("o-a", "ListRoots")
        first.throttled("o-a", "ListRoots", ticket)
        _, wait = second.acquire("o-a", "ListRoots")
        with db.connect(database_url) as conn:
            row = conn.execute("SELECT rate, throttled FROM aws_budgets").fetchone()
    assert row == {"rate": pytest.approx(40.0 * 0.8), "throttled": 1}
    assert wait == 0.0  # the burst still holds tokens: lower rate, no stall
