"""The one list of required actions against the Organizations calls the real stages make on
a simulated AWS over HTTP (the live checks played with fakes are in
tests/unit/test_registration_live.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from orgsync.pipelines import discovery, harvest
from orgsync.pipelines.registration_checks import REQUIRED_ACTIONS, check_live
from orgsync.services.testing.moto_aws import SimulatedAws, SimulatedAwsControl
from orgsync.services.testing.sample_org import OrgSpec, build_organization
from tests.support.live_checks import FakeAssume, FakeIam, Role, creds

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def simulated() -> Iterator[SimulatedAws]:
    # moto keeps its state in module globals: start empty and leave nothing behind
    with SimulatedAws() as aws:
        SimulatedAwsControl(aws.endpoint_url).reset()
        yield aws
        SimulatedAwsControl(aws.endpoint_url).reset()


def recording_client(endpoint_url: str, calls: list[str]) -> Any:
    client = boto3.client(
        "organizations",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.meta.events.register(
        "before-call.organizations",
        lambda model, **_: calls.append(f"organizations:{model.name}"),
    )
    return client


def test_the_required_actions_are_exactly_the_organizations_calls_the_stages_make(
    simulated: SimulatedAws,
) -> None:
    org = build_organization(
        simulated.endpoint_url, OrgSpec(accounts=3, depth=1, branching=1, suspended=0, excluded=0)
    )
    calls: list[str] = []
    client = recording_client(simulated.endpoint_url, calls)

    # registration's own calls, with a simulator that allows everything (so no probes)
    check = check_live(FakeAssume(Role(client, FakeIam())), creds())
    assert check.problems == [] and check.aws_org_id == org.org_id
    seen = [account.account_id for batch in discovery.walk(client, ()) for account in batch]
    assert set(seen) >= {a.id for a in org.accounts}
    for account_id in seen:
        harvest.fetch_tags(client, account_id)

    assert sorted(set(calls)) == sorted(REQUIRED_ACTIONS)
