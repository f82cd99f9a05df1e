"""AWS call threads taken in turns by organization, not in arrival order."""

from __future__ import annotations

import threading
from contextvars import ContextVar

import pytest

from orgsync.services.processes.fair_threads import FairThreads, serving
from tests.support.waiting import wait_until


def test_a_late_organizations_calls_take_turns_with_an_earlier_ones_backlog() -> None:
    threads = FairThreads(1, "test")
    gate = threading.Event()
    order: list[str] = []

    def call(name: str) -> str:
        gate.wait(5)
        order.append(name)
        return name

    def submitted(owner: str, names: list[str], then_waiting: int) -> threading.Thread:
        def run() -> None:
            with serving(owner):
                assert threads.map(call, names) == names

        thread = threading.Thread(target=run)
        thread.start()
        wait_until(lambda: threads.waiting() == then_waiting, 5, f"{owner}'s calls queued")
        return thread

    large = submitted("o-large", [f"L{n}" for n in range(6)], then_waiting=5)  # L0 is running
    small = submitted("o-small", ["S0", "S1"], then_waiting=7)
    gate.set()
    large.join(5)
    small.join(5)
    threads.shutdown()
    # in arrival order S0 and S1 would be 7th and 8th
    assert order == ["L0", "L1", "S0", "L2", "S1", "L3", "L4", "L5"]


def test_each_call_sees_the_callers_context_and_the_first_error_is_raised() -> None:
    lane: ContextVar[str] = ContextVar("lane", default="none")
    threads = FairThreads(4, "test")
    lane.set("bulk")
    assert threads.map(lambda n: (n, lane.get()), [1, 2]) == [(1, "bulk"), (2, "bulk")]

    def fail(n: int) -> int:
        if n == 2:
            raise ValueError("two")
        return n

    with pytest.raises(ValueError, match="two"):
        threads.map(fail, [1, 2, 3])
    threads.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        threads.map(fail, [1])
