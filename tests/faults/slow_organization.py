"""The "slow organization" fault: a second organization, whose management account's AWS answers
come 10x slower and throttled, syncs at the same time as the harness's organization.

The second organization lives in a management account of its own; it is registered and synced
once, unslowed, before the run's timed part, and its state then is what it must end in. Then
both syncs start together, only the second organization's answers slowed. The harness's
organization must end as in the clean run (0 lost, 0 duplicated, 0 wrong) and its sync take
about the clean run's time; the slow one must end as it was, or its row says that it did not
finish in time.
"""

from __future__ import annotations

import time

from orgsync.services.adapters import db
from orgsync.services.read_models import inventory
from orgsync.services.testing.sample_org import (
    OTHER_MANAGEMENT_ACCOUNT_ID,
    OrgSpec,
    build_second_organization,
)
from orgsync.services.use_cases import registering, syncs
from tests.faults.harness import (
    OUTBOX_OF_ORG,
    SETTLE_TIMEOUT,
    Harness,
    OtherOrganization,
    Result,
    Run,
)
from tests.faults.state import compare, snapshot
from tests.faults.workers import Supervisor
from tests.support.waiting import wait_until

SLOW_ACCOUNT = OTHER_MANAGEMENT_ACCOUNT_ID
SLOW_SPEC = OrgSpec(accounts=20, depth=1, branching=3, suspended=1, excluded=1, seed=11)
SLOWDOWN = 10.0  # its answers take ten times moto's time
SLOW_RATES = {"*": [2, 2]}  # calls/s and burst per API of its management account
# the harness organization's sync beside it: at most this many times the clean run's, plus
TIMES_CLEAN, GRACE_S = 1.5, 5.0


def register_slow_organization(harness: Harness, run: Run) -> None:
    """The second organization, registered through the registrar and synced once, unslowed,
    by workers of its own that stop before the timed part."""
    assert run.house is not None
    org = build_second_organization(harness.aws.endpoint_url, SLOW_SPEC)
    request = harness.registration_request(org, "slow")
    # no stuck-sync sweeper here: it would re-drive the template's never-run first sync of the
    # harness's organization, which the timed part must find as every other run finds it
    env = dict(run.env, ORGSYNC_STUCK_AFTER="1h")
    with Supervisor(env, harness.base / f"{run.name}-before.log"):
        registering.submit(run.house, request)
        verdict = registering.wait_verdict(run.house, request["request_id"], 120)
        assert verdict.accepted and verdict.org_id, verdict.reasons
        first_sync = syncs.latest_sync(run.house, verdict.org_id)
        assert first_sync is not None
        syncs.wait_sync(run.house, first_sync, SETTLE_TIMEOUT)
    with db.connect(run.settings.database_url) as conn:
        reference = snapshot(conn, verdict.org_id, first_sync)
    run.other = OtherOrganization(verdict.org_id, len(org.accounts), reference)


def slow_organization(harness: Harness, run: Run, workers: Supervisor) -> None:
    """The second organization's sync beside the harness's, its AWS slowed and throttled,
    each followed to its end."""
    other = run.other
    assert other is not None and run.house is not None
    faults = harness.aws.faults
    faults.update(slowdown={SLOW_ACCOUNT: SLOWDOWN}, account_rates={SLOW_ACCOUNT: SLOW_RATES})
    faults.reset_counts()
    started = time.monotonic()
    try:
        other.sync_id = syncs.sync(run.house, other.org_id, trigger=f"faults:{run.name}")
        wait_until(run.finished, SETTLE_TIMEOUT, f"{run.name}: the organization's sync")
        run.mark_synced()
        other.finished = follow(run, other, started + SETTLE_TIMEOUT)
        other.seconds = time.monotonic() - started
        throttled = faults.caller_counts()["throttled"].get(SLOW_ACCOUNT, 0)
    finally:
        faults.update(slowdown={}, account_rates={})
    with db.connect(run.settings.database_url) as conn:
        other.counts = compare(other.reference, snapshot(conn, other.org_id, other.sync_id))
        waiting = conn.execute(OUTBOX_OF_ORG, (other.org_id,)).fetchone()
    what = (
        f"slow org: {other.accounts} accounts, answers {SLOWDOWN:.0f}x slower, "
        f"{SLOW_RATES['*'][0]} calls/s per API, {throttled} throttled"
    )
    if other.finished:
        counts = other.counts
        run.notes.append(
            f"{what}; ended in {other.seconds:.0f} s with {counts.lost} lost,"
            f" {counts.duplicated} duplicated, {counts.wrong} wrong"
        )
    else:
        run.notes.append(f"{what}; DID NOT FINISH within {SETTLE_TIMEOUT:.0f} s")
    if waiting and waiting["n"]:
        run.notes.append(f"slow org: {waiting['n']} outbox row(s) still there after its sync")


def follow(run: Run, other: OtherOrganization, deadline: float) -> bool:
    """Until the other organization's sync has finished; False when the deadline comes first."""

    def done() -> bool:
        with db.connect(run.settings.database_url) as conn:
            return inventory.sync_finished(inventory.sync_progress(conn, other.sync_id))

    try:
        wait_until(
            done,
            max(0.0, deadline - time.monotonic()),
            "the slow organization's sync",
            interval=0.2,
        )
    except AssertionError:
        return False
    return True


def check(results: list[Result]) -> list[str]:
    """What is wrong with the slow-organization run, compared with the clean one."""
    clean = next(r for r in results if r.name == "clean")
    slow = next(r for r in results if r.name == "slow-organization")
    problems = []
    assert clean.synced_s is not None and slow.synced_s is not None
    bound = TIMES_CLEAN * clean.synced_s + GRACE_S
    if slow.synced_s > bound:
        problems.append(
            f"the organization's sync took {slow.synced_s:.1f} s beside the slow one,"
            f" over {bound:.1f} s ({TIMES_CLEAN}x the clean run's {clean.synced_s:.1f} s"
            f" + {GRACE_S:.0f} s)"
        )
    other = slow.other
    assert other is not None and other.counts is not None
    if other.finished and not other.counts.clean:
        problems.append(f"the slow organization ended wrong: {other.counts}")
    return problems
