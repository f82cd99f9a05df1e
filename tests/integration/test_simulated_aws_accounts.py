"""The simulated AWS tells calling accounts apart: a second organization in a management account
of its own, reached through its role as orgsync reaches it, can be slowed and throttled alone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from orgsync.services.testing.moto_aws import (
    ControlPlaneError,
    SimulatedAws,
    SimulatedAwsControl,
)
from orgsync.services.testing.sample_org import (
    MANAGEMENT_ACCOUNT_ID,
    OTHER_MANAGEMENT_ACCOUNT_ID,
    OrgSpec,
    SampleOrg,
    build_organization,
    build_second_organization,
)

pytestmark = pytest.mark.integration

OTHER = OTHER_MANAGEMENT_ACCOUNT_ID


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatedAws]:
    with SimulatedAws() as simulated:
        yield simulated


@pytest.fixture(scope="module")
def orgs(sim: SimulatedAws) -> tuple[SampleOrg, SampleOrg]:
    SimulatedAwsControl(sim.endpoint_url).reset()
    first = build_organization(sim.endpoint_url, OrgSpec(accounts=6, suspended=1, excluded=1))
    second = build_second_organization(sim.endpoint_url, OrgSpec(accounts=4, suspended=0))
    return first, second


@pytest.fixture(autouse=True)
def clean_faults(sim: SimulatedAws) -> None:
    sim.faults.reset()
    sim.faults.reset_counts()


def as_role(sim: SimulatedAws, org: SampleOrg, attempts: int = 1) -> Any:
    """The organization's Organizations client as orgsync makes it: its role assumed with
    orgsync's own credentials."""
    sts = boto3.client(
        "sts",
        endpoint_url=sim.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    issued = sts.assume_role(RoleArn=org.org_role_arn, RoleSessionName="orgsync")["Credentials"]
    return boto3.client(
        "organizations",
        endpoint_url=sim.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=issued["AccessKeyId"],
        aws_secret_access_key=issued["SecretAccessKey"],
        aws_session_token=issued["SessionToken"],
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )


def test_a_second_organization_has_its_own_management_account_and_ids(
    sim: SimulatedAws, orgs: tuple[SampleOrg, SampleOrg]
) -> None:
    first, second = orgs

    described = as_role(sim, second).describe_organization()["Organization"]
    listed = as_role(sim, second).list_accounts()["Accounts"]

    assert (described["Id"], described["MasterAccountId"]) == (second.org_id, OTHER)
    assert second.org_role_arn == f"arn:aws:iam::{OTHER}:role/OrgSyncReadOnly"
    assert {a["Id"] for a in listed} == {OTHER} | {a.id for a in second.accounts}
    assert first.org_id != second.org_id
    assert not {a.id for a in first.accounts} & {a.id for a in second.accounts}


def test_calls_through_an_assumed_role_count_against_the_role_s_account(
    sim: SimulatedAws, orgs: tuple[SampleOrg, SampleOrg]
) -> None:
    first, second = as_role(sim, orgs[0]), as_role(sim, orgs[1])
    sim.faults.reset_counts()  # the two AssumeRole calls were orgsync's own account's

    for _ in range(3):
        first.list_roots()
    second.list_roots()

    assert sim.faults.caller_counts() == {
        "calls": {MANAGEMENT_ACCOUNT_ID: 3, OTHER: 1},
        "throttled": {},
    }


def test_a_slowed_account_waits_its_factor_times_longer_and_no_other_does(
    sim: SimulatedAws, orgs: tuple[SampleOrg, SampleOrg]
) -> None:
    first, second = as_role(sim, orgs[0]), as_role(sim, orgs[1])
    sim.faults.update(latency_ms=20, slowdown={OTHER: 10})

    def five_calls(client: Any) -> float:
        started = time.perf_counter()
        for _ in range(5):
            client.list_roots()
        return time.perf_counter() - started

    unslowed, slowed = five_calls(first), five_calls(second)

    assert unslowed < 5 * 0.2 * 0.5
    assert slowed >= 5 * 0.2  # ten times the latency, and ten times moto's own time
    assert slowed >= 5 * unslowed


def test_account_rates_throttle_that_account_alone(
    sim: SimulatedAws, orgs: tuple[SampleOrg, SampleOrg]
) -> None:
    first, second = as_role(sim, orgs[0]), as_role(sim, orgs[1])
    sim.faults.update(rates={"*": [1000, 1000]}, account_rates={OTHER: {"*": [1, 2]}})
    sim.faults.reset_counts()

    for _ in range(5):
        first.list_roots()
    outcomes = []
    for _ in range(5):
        try:
            second.list_roots()
            outcomes.append("ok")
        except ClientError as error:
            outcomes.append(error.response["Error"]["Code"])

    assert outcomes[:2] == ["ok", "ok"]  # its burst
    assert outcomes[2:] == ["TooManyRequestsException"] * 3
    assert sim.faults.caller_counts()["throttled"] == {OTHER: 3}


def test_the_control_plane_sets_slowdown_and_account_rates_and_refuses_bad_ones(
    sim: SimulatedAws,
) -> None:
    control = SimulatedAwsControl(sim.endpoint_url)

    shown = control.set_faults(slowdown={OTHER: 10}, account_rates={OTHER: {"*": [2, 2]}})

    assert shown["slowdown"] == {OTHER: 10.0}
    assert shown["account_rates"] == {OTHER: {"*": [2.0, 2.0]}}
    assert sim.faults.slowdown_of(OTHER) == 10.0 and sim.faults.slowdown_of("000000000000") == 1
    assert control.caller_counts() == {"calls": {}, "throttled": {}}
    with pytest.raises(ControlPlaneError, match="factors between 1 and 1000"):
        control.set_faults(slowdown={OTHER: 0.5})
    with pytest.raises(ControlPlaneError, match="12-digit account ids"):
        control.set_faults(account_rates={"management": {"*": [2, 2]}})
    with pytest.raises(ControlPlaneError, match=r"expected \[rate > 0, burst >= 1\]"):
        control.set_faults(account_rates={OTHER: {"*": [0, 2]}})
    assert control.reset_faults()["slowdown"] == {}
