"""`make test-faults`: nothing lost, duplicated or wrong under crashes, restarts, duplicates,
throttling, a slow organization beside it, and an incremental sync after drift, counted over a
300-account organization (see tests/faults/harness.py, slow_organization.py and drift.py).

ORGSYNC_FAULT_SEED=<n> replays the random choices (kill moments and targets, restart points)
of an earlier run; the seed is printed with the table.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from tests.faults.drift import full_sync_then_drift
from tests.faults.harness import (
    KILLS,
    Harness,
    Result,
    deliver_twice,
    failures,
    kill_workers,
    restart_postgres,
    restart_rabbitmq,
    table,
    throttle,
    throttled,
    twice_argv,
)
from tests.faults.slow_organization import check as slow_organization_problems
from tests.faults.slow_organization import register_slow_organization, slow_organization

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]


def test_no_fault_loses_duplicates_or_corrupts_anything(capsys: pytest.CaptureFixture[str]) -> None:
    seed = int(os.environ.get("ORGSYNC_FAULT_SEED") or random.SystemRandom().randrange(10**6))
    started = time.monotonic()
    results: list[Result] = []

    def record(result: Result) -> None:
        results.append(result)
        with capsys.disabled():
            print(f"\n{result.name}: {result.seconds:.0f} s, {result.counts}", flush=True)

    with Harness(seed) as harness:
        setup = time.monotonic() - started
        record(harness.run("clean"))
        reference = harness.reference
        assert reference is not None and reference.accounts >= 290, "the clean run is incomplete"
        record(harness.run("kill-9", kill_workers, slots=4, threads=2))
        record(harness.run("restart-rabbitmq", restart_rabbitmq))
        record(harness.run("restart-postgres", restart_postgres))
        record(harness.run("deliver-twice", deliver_twice, argv=twice_argv()))
        with throttled(harness):
            record(harness.run("throttle-by-rate", throttle))
        record(harness.run("slow-organization", slow_organization, register_slow_organization))
        record(harness.run("incremental", before=full_sync_then_drift, mode="incremental"))
    report = table(results, seed)
    report += f"\nsetup {setup:.0f} s, total {time.monotonic() - started:.0f} s"
    with capsys.disabled():
        print("\n" + report, flush=True)
    assert not (failing := failures(results)), f"seed {seed}: " + "\n".join(failing)
    assert not (problems := slow_organization_problems(results)), problems
    kills = next(r for r in results if r.name == "kill-9")
    assert kills.notes[0].startswith(f"{KILLS} kill -9"), kills.notes
    for name in ("restart-rabbitmq", "restart-postgres"):
        healed = next(r for r in results if r.name == name)
        assert healed.worker_starts == 2, f"{name}: workers had to be restarted to heal"
