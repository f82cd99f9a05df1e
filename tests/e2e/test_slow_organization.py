"""An organization held to the minimum AWS rates cannot hold up another organization's sync.

SLOW is registered with `aws_rates` at the minimum (0.5 calls/s for every Organizations API),
so its first sync needs about two seconds per tag read; FAST, registered with the defaults, is
re-synced once alone and once while SLOW's sync runs. FAST's second sync may take a few times
its first, never SLOW's time.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from orgsync.services.bootstrap import House
from orgsync.services.read_models.inventory import sync_finished
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import (
    OrgSpec,
    SampleOrg,
    build_organization,
    build_second_organization,
    change_tags,
)
from orgsync.services.use_cases import registering, syncs
from tests.support.cli import TIMEOUT, orgsync, register_and_sync, request_for
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

MINIMUM_RATES = {"*": {"floor": 0.5, "ceiling": 0.5}}
# 24 tag reads at 0.5 calls/s: SLOW's sync lasts 48 s at least, far past FAST's bound
SLOW_SPEC = OrgSpec(accounts=24, depth=1, branching=2, suspended=0, excluded=0, seed=7)
FAST_SPEC = OrgSpec(accounts=30, suspended=2, excluded=2)
TIMES_ALONE, GRACE_S = 3.0, 5.0  # FAST's bound beside SLOW: 3 times its time alone, plus 5 s


@pytest.fixture
def settings(settings: Settings, own_broker_url: str) -> Settings:
    """A vhost of its own: SLOW's pages still queued when the test ends reach no later test."""
    return dataclasses.replace(settings, broker_url=own_broker_url)


def timed_sync(house: House, org_id: str) -> float:
    started = time.monotonic()
    syncs.wait_sync(house, syncs.sync(house, org_id), TIMEOUT)
    return time.monotonic() - started


def register(house: House, request: dict[str, Any]) -> str:
    """The organization's id once its registration is accepted; its first sync has started."""
    registering.submit(house, request)
    verdict = registering.wait_verdict(house, request["request_id"], TIMEOUT)
    assert verdict.accepted and verdict.org_id is not None, verdict.reasons
    return verdict.org_id


def retag(org: SampleOrg) -> dict[str, dict[str, str]]:
    """New values for a few members' `team` tag, which only a sync that reads them all sees."""
    members = [a for a in org.accounts if not a.name.startswith("sandbox-")]
    return {a.id: {"team": f"retagged-{n}"} for n, a in enumerate(members[::5])}


def test_an_organization_at_the_minimum_rates_cannot_hold_up_another_s_sync(
    settings: Settings, house: House, aws: SimulatedAws, worker: Path
) -> None:
    fast = build_organization(aws.endpoint_url, FAST_SPEC)
    slow = build_second_organization(aws.endpoint_url, SLOW_SPEC)
    fast_id = register_and_sync(settings, request_for(fast, "fast"))
    alone = timed_sync(house, fast_id)

    slow_id = register(house, request_for(slow, "slow", aws_rates=MINIMUM_RATES))
    slow_sync = syncs.latest_sync(house, slow_id)
    assert slow_sync is not None
    wait_until(
        lambda: syncs.progress(house, slow_sync)["stages"], 30, "SLOW's first accounts walked"
    )
    changes = retag(fast)
    change_tags(aws.endpoint_url, changes)
    beside_slow = timed_sync(house, fast_id)
    slow_progress = syncs.progress(house, slow_sync)

    bound = TIMES_ALONE * alone + GRACE_S
    figures = f"FAST alone {alone:.1f} s, beside SLOW {beside_slow:.1f} s, bound {bound:.1f} s"
    print(figures)  # shown with -s
    assert beside_slow <= bound, figures
    assert not sync_finished(slow_progress), "SLOW finished first: the test shows nothing"
    listed = {
        a["account_id"]: a for a in orgsync(settings, aws, "accounts", "--org", "fast", "--json")
    }
    for expected in fast.accounts:
        if expected.name.startswith("sandbox-"):
            assert expected.id not in listed
            continue
        account = listed[expected.id]
        tags = {**expected.tags, **changes.get(expected.id, {})}
        assert account["org_path"] == expected.path
        assert account["status"] == ("suspended" if expected.suspended else "ok")
        assert account["tags"] == tags
        assert {b["key"]: b["value"] for b in account["badges"]}.items() >= tags.items()
    assert orgsync(settings, aws, "failed", "--org", "fast", "--json") == []
