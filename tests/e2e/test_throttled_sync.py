"""A sync through a simulated AWS that throttles by rate: slower, never a failed account."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orgsync.services.adapters import db
from orgsync.services.bootstrap import House
from orgsync.services.commands.inventory import sync_state
from orgsync.services.read_models import inventory
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import OrgSpec, build_organization
from orgsync.services.use_cases import registering, syncs
from tests.support.cli import TIMEOUT, orgsync, request_for
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

# far below the budget's default ceilings (50/s, AssumeRole 100/s): it must find these out.
# The walk's listing is slowest, so that AWS throttles while the sync still runs (its walk),
# whenever the other stages' first throttles come
RATES = {"*": [15, 5], "AssumeRole": [15, 5], "ListAccountsForParent": [2, 1]}


@pytest.fixture
def settings(settings: Settings, own_broker_url: str) -> Settings:
    """A vhost of its own: what is still in flight when the sync is seen finished (a throttled
    call's retry, a last page of badges) reaches no later test's worker."""
    return dataclasses.replace(settings, broker_url=own_broker_url)


def test_a_sync_under_rate_throttling_imports_every_account_and_fails_none(
    settings: Settings, house: House, aws: SimulatedAws, worker: Path
) -> None:
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=60, suspended=0, excluded=0))
    aws.faults.reset_counts()
    aws.faults.update(rates=RATES)

    request = request_for(org, "throttled")
    registering.submit(house, request)
    verdict = registering.wait_verdict(house, request["request_id"], TIMEOUT)
    assert verdict.accepted and verdict.org_id is not None
    org_id = verdict.org_id
    sync_id = syncs.latest_sync(house, org_id)
    assert sync_id is not None
    states = set()

    def finished() -> bool:
        with db.connect(settings.database_url) as conn:
            [row] = inventory.organizations(conn)
            done = inventory.sync_finished(inventory.sync_progress(conn, sync_id))
        if not done:
            states.add(sync_state(row["last_sync"] or {}, row["throttled_now"]))
        return done

    wait_until(finished, TIMEOUT, "the sync finished")
    # what `orgsync orgs` said meanwhile
    assert any(state.endswith("running, slowed by AWS throttling") for state in states), states

    accounts = orgsync(settings, aws, "accounts", "--org", "throttled", "--json")
    assert len(accounts) == 61 and {a["status"] for a in accounts} == {"ok"}
    assert all(a["badges"] for a in accounts)  # harvested and reconciled, every one
    assert orgsync(settings, aws, "failed", "--org", "throttled", "--json") == []
    throttled = aws.faults.counts()["throttled"]
    assert throttled, "the simulator never throttled: the test shows nothing"
    with db.connect(settings.database_url) as conn:
        budgets = {
            (r["scope"], r["api"]): r
            for r in conn.execute("SELECT scope, api, rate, throttled FROM aws_budgets")
        }
    seen = sum(b["throttled"] for b in budgets.values())
    assert 0 < seen <= sum(throttled.values())  # the registration's own checks are not paced
    tags = budgets[(org_id, "ListTagsForResource")]
    assert tags["rate"] < settings.aws_rates["*"][1]
    [shown] = orgsync(settings, aws, "orgs", "--json")
    assert shown["aws_budget"]["ListTagsForResource"]["throttled"] == tags["throttled"]
    assert shown["aws_budget"]["AssumeRole"]["rate"] > 0  # orgsync's own, shared by every org
