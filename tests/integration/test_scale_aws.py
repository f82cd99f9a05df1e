"""The scale simulator answers boto3 as AWS would and builds the organization moto builds."""

from __future__ import annotations

import argparse
import tracemalloc
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from orgsync.pipelines import discovery
from orgsync.services.testing.moto_aws import (
    MODEST_RATES,
    ControlPlaneError,
    SimulatedAws,
    SimulatedAwsControl,
    add_rate_arguments,
    rates_from_args,
)
from orgsync.services.testing.sample_org import OrgSpec, build_organization, change_tags
from orgsync.services.testing.scale_aws import ScaleAws, describe, generate
from orgsync.services.testing.scale_orgs import ScaleAwsControl
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SPEC = OrgSpec(accounts=120, depth=3, branching=3, suspended=3, excluded=2, tags_per_account=3)


@pytest.fixture(scope="module")
def scale() -> Iterator[ScaleAws]:
    with ScaleAws(SPEC) as aws:
        yield aws


@pytest.fixture(autouse=True)
def clean_faults(scale: ScaleAws) -> None:
    scale.faults.reset()
    scale.faults.reset_counts()


def client(aws: ScaleAws, service: str, **config: Any) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(**config) if config else None,
    )


def plan(accounts: list[Any]) -> list[tuple[Any, ...]]:
    return sorted((a.name, a.email, a.path, sorted(a.tags.items()), a.suspended) for a in accounts)


def test_one_spec_builds_the_same_accounts_ous_and_tags_in_moto_and_in_the_simulator(
    scale: ScaleAws,
) -> None:
    with SimulatedAws() as moto:
        SimulatedAwsControl(moto.endpoint_url).reset()  # moto's backends are per process
        built = build_organization(moto.endpoint_url, SPEC)
    generated = scale.org.sample_org()

    assert plan(generated.accounts) == plan(built.accounts)
    assert sorted(generated.ous.values()) == sorted(built.ous.values())
    assert generated.org_role_arn == built.org_role_arn


def test_discovery_walks_every_account_once_through_20_item_pages(scale: ScaleAws) -> None:
    orgs = client(scale, "organizations")
    seen = [a for page in discovery.walk(orgs, ()) for a in page]

    listed = [a for p in orgs.get_paginator("list_accounts").paginate() for a in p["Accounts"]]
    assert len(seen) == len({a.account_id for a in seen}) == SPEC.accounts + 1  # + management
    assert {a.account_id for a in seen} == {a["Id"] for a in listed}
    expected = {a.id: a.path for a in scale.org.sample_org().accounts}
    assert {a.account_id: a.org_path for a in seen if a.account_id in expected} == expected
    assert sum(a.aws_state == "SUSPENDED" for a in seen) == SPEC.suspended


def test_more_than_20_a_page_or_a_foreign_token_is_invalid_input_as_in_aws(
    scale: ScaleAws,
) -> None:
    orgs = client(scale, "organizations")
    root = orgs.list_roots()["Roots"][0]["Id"]
    page = orgs.list_accounts_for_parent(ParentId=root, MaxResults=1)

    with pytest.raises(ClientError) as too_many:
        orgs.list_accounts(MaxResults=21)
    with pytest.raises(ClientError) as foreign:
        orgs.list_accounts(NextToken=page["NextToken"])
    assert too_many.value.response["Error"]["Code"] == "InvalidInputException"
    assert foreign.value.response["Error"]["Code"] == "InvalidInputException"


def test_tags_changed_at_run_time_are_what_list_tags_for_resource_returns(
    scale: ScaleAws,
) -> None:
    account = scale.org.sample_org().accounts[0]
    removed = next(iter(account.tags))
    change_tags(scale.endpoint_url, {account.id: {"added": "yes", removed: None}})

    tags = client(scale, "organizations").list_tags_for_resource(ResourceId=account.id)["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {
        **{k: v for k, v in account.tags.items() if k != removed},
        "added": "yes",
    }


def test_assumed_member_credentials_act_as_the_member_account(scale: ScaleAws) -> None:
    member = scale.org.sample_org().accounts[1].id
    issued = client(scale, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{member}:role/OrgSyncMember", RoleSessionName="probe"
    )["Credentials"]
    as_member = boto3.client(
        "sts",
        endpoint_url=scale.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=issued["AccessKeyId"],
        aws_secret_access_key=issued["SecretAccessKey"],
        aws_session_token=issued["SessionToken"],
    )

    identity = as_member.get_caller_identity()
    assert identity["Account"] == member
    assert identity["Arn"] == f"arn:aws:sts::{member}:assumed-role/OrgSyncMember/probe"


def test_the_policy_simulator_allows_every_action_it_is_asked_about(scale: ScaleAws) -> None:
    actions = ["organizations:ListRoots", "organizations:ListTagsForResource"]
    results = client(scale, "iam").simulate_principal_policy(
        PolicySourceArn=scale.org.org_role_arn, ActionNames=actions
    )["EvaluationResults"]

    assert [(r["EvalActionName"], r["EvalDecision"]) for r in results] == [
        (a, "allowed") for a in actions
    ]


def test_throttled_calls_are_aws_throttling_errors_and_are_counted(scale: ScaleAws) -> None:
    control = SimulatedAwsControl(scale.endpoint_url)
    control.set_faults(throttle_ratio=1.0)
    no_retries = {"retries": {"total_max_attempts": 1}}

    with pytest.raises(ClientError) as orgs_error:
        client(scale, "organizations", **no_retries).list_roots()
    with pytest.raises(ClientError) as sts_error:
        client(scale, "sts", **no_retries).assume_role(
            RoleArn="arn:aws:iam::100000000001:role/OrgSyncMember", RoleSessionName="probe"
        )
    assert orgs_error.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert sts_error.value.response["Error"]["Code"] == "Throttling"
    assert control.counts()["operations"] == {"ListRoots": 1, "AssumeRole": 1}


def test_a_denied_member_role_is_access_denied_and_others_are_not(scale: ScaleAws) -> None:
    denied, allowed = (a.id for a in scale.org.sample_org().accounts[:2])
    scale.faults.update(deny_assume_role=[denied])
    sts = client(scale, "sts")

    with pytest.raises(ClientError) as error:
        sts.assume_role(
            RoleArn=f"arn:aws:iam::{denied}:role/OrgSyncMember", RoleSessionName="probe"
        )
    sts.assume_role(RoleArn=f"arn:aws:iam::{allowed}:role/OrgSyncMember", RoleSessionName="probe")
    assert error.value.response["Error"]["Code"] == "AccessDenied"


def test_the_control_plane_describes_the_organization(scale: ScaleAws) -> None:
    described = describe(scale.endpoint_url)

    assert described["org_id"] == scale.org.org_id
    assert described["accounts"] == SPEC.accounts
    assert described["ous"] == 3 + 9 + 27


def test_a_100000_account_organization_takes_tens_of_megabytes_not_gigabytes() -> None:
    tracemalloc.start()
    try:
        org = generate(OrgSpec(accounts=100_000, depth=4, branching=4, tags_per_account=4))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert org.size == 100_000
    assert org.name(99_999).endswith("-100000")
    assert held < 32 * 1024 * 1024  # about 10 MB measured: arrays and shared tag values


def test_rates_throttle_each_api_and_calling_account_beyond_its_burst(scale: ScaleAws) -> None:
    control = SimulatedAwsControl(scale.endpoint_url)
    control.set_faults(rates={"ListRoots": [0.001, 2], "*": [0.001, 1]})
    orgs = client(scale, "organizations", retries={"total_max_attempts": 1})

    orgs.list_roots()
    orgs.list_roots()
    with pytest.raises(ClientError) as throttled:
        orgs.list_roots()
    orgs.describe_organization()  # another API, its own bucket
    member = client(scale, "sts").assume_role(
        RoleArn="arn:aws:iam::100000000001:role/OrgSyncMember", RoleSessionName="probe"
    )["Credentials"]
    as_member = boto3.client(
        "organizations",
        endpoint_url=scale.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=member["AccessKeyId"],
        aws_secret_access_key=member["SecretAccessKey"],
        aws_session_token=member["SessionToken"],
        config=Config(retries={"total_max_attempts": 1}),
    )
    as_member.list_roots()  # another calling account, its own bucket

    error = throttled.value.response
    assert error["Error"]["Code"] == "TooManyRequestsException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "too many requests" in error["Error"]["Message"]
    assert control.counts()["throttled"] == {"ListRoots": 1}
    assert control.faults()["rates"] == {"ListRoots": [0.001, 2.0], "*": [0.001, 1.0]}


def test_a_bucket_refills_at_its_rate(scale: ScaleAws) -> None:
    scale.faults.update(rates={"ListRoots": [50, 1]})
    orgs = client(scale, "organizations", retries={"total_max_attempts": 1})
    orgs.list_roots()
    with pytest.raises(ClientError):
        orgs.list_roots()

    def refilled() -> bool:
        try:
            orgs.list_roots()
        except ClientError:
            return False
        return True

    wait_until(refilled, 5, "the bucket refilled", interval=0.01)


@pytest.mark.parametrize(
    "rates", [{"ListRoots": [0, 1]}, {"ListRoots": [1, 0.5]}, {"List Roots": 1}, ["x"]]
)
def test_bad_rates_are_refused_by_the_control_plane(scale: ScaleAws, rates: Any) -> None:
    with pytest.raises(ControlPlaneError, match="rates"):
        SimulatedAwsControl(scale.endpoint_url).set_faults(rates=rates)


def test_the_command_line_takes_rates_and_the_modest_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_rate_arguments(parser)
    args = parser.parse_args(["--modest-rates", "--rate", "ListRoots=5:10", "--rate", "*=3"])
    assert rates_from_args(args) == {**MODEST_RATES, "ListRoots": (5.0, 10.0), "*": (3.0, 3.0)}
    with pytest.raises(SystemExit):
        parser.parse_args(["--rate", "ListRoots=-1"])


OTHER = OrgSpec(
    accounts=15, depth=1, branching=2, suspended=0, excluded=0, tags_per_account=2, seed=9
)


@pytest.fixture(scope="module")
def two_orgs() -> Iterator[ScaleAws]:
    with ScaleAws(SPEC, others=[OTHER]) as aws:
        yield aws


def as_org_role(aws: ScaleAws, role_arn: str, service: str = "organizations") -> Any:
    """A client acting as the organization role, as orgsync's workers do."""
    issued = client(aws, "sts").assume_role(RoleArn=role_arn, RoleSessionName="probe")[
        "Credentials"
    ]
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=issued["AccessKeyId"],
        aws_secret_access_key=issued["SecretAccessKey"],
        aws_session_token=issued["SessionToken"],
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_each_org_role_sees_its_own_organization_on_one_endpoint(two_orgs: ScaleAws) -> None:
    first, other = two_orgs.orgs
    as_first = as_org_role(two_orgs, first.org_role_arn)
    as_other = as_org_role(two_orgs, other.org_role_arn)

    seen_first = [a for page in discovery.walk(as_first, ()) for a in page]
    seen_other = [a for page in discovery.walk(as_other, ()) for a in page]

    assert len(seen_first) == SPEC.accounts + 1 and len(seen_other) == OTHER.accounts + 1
    assert as_other.describe_organization()["Organization"]["MasterAccountId"] == "200000000001"
    assert {a.account_id for a in seen_other} == {
        other.management_account_id,
        *(other.account_id(i) for i in range(OTHER.accounts)),
    }
    # base credentials still see the first organization, as a single-organization run does
    assert client(two_orgs, "organizations").describe_organization()["Organization"]["Id"] == (
        first.org_id
    )


def test_one_organization_throttled_at_run_time_leaves_the_other_unthrottled(
    two_orgs: ScaleAws,
) -> None:
    first, other = two_orgs.orgs
    control = ScaleAwsControl(two_orgs.endpoint_url)
    control.reset_faults()
    control.reset_counts()
    control.set_org(first.management_account_id, rates={"*": [0.001, 2]})
    as_first = as_org_role(two_orgs, first.org_role_arn)
    as_other = as_org_role(two_orgs, other.org_role_arn)

    as_first.list_roots()
    as_first.list_roots()
    with pytest.raises(ClientError) as throttled:
        as_first.list_roots()
    for _ in range(5):
        as_other.list_roots()
    as_first.describe_organization()  # another API: a bucket of its own

    assert throttled.value.response["Error"]["Code"] == "TooManyRequestsException"
    states = {o["management_account_id"]: o for o in control.orgs()}
    assert states[first.management_account_id]["rates"] == {"*": [0.001, 2.0]}
    assert states[first.management_account_id]["counts"]["throttled"] == {"ListRoots": 1}
    assert states[other.management_account_id]["counts"] == {
        "operations": {"AssumeRole": 1, "ListRoots": 5},
        "throttled": {},
    }
    control.set_org(first.management_account_id, rates={})
    as_first.list_roots()  # unthrottled again


def test_tags_change_through_the_control_plane_in_whichever_organization_holds_the_account(
    two_orgs: ScaleAws,
) -> None:
    other = two_orgs.orgs[1]
    account = other.account_id(4)
    control = ScaleAwsControl(two_orgs.endpoint_url)

    changed = control.tag(account, {"bench": "x1"}, remove=["env"])
    listed = as_org_role(two_orgs, other.org_role_arn).list_tags_for_resource(ResourceId=account)

    assert changed["management_account_id"] == other.management_account_id
    assert {t["Key"]: t["Value"] for t in listed["Tags"]} == changed["tags"]
    assert changed["tags"]["bench"] == "x1" and "env" not in changed["tags"]
    with pytest.raises(ControlPlaneError, match="no organization holds"):
        control.tag("000000000000", {"bench": "x"})
    with pytest.raises(ControlPlaneError, match="no organization has management account"):
        control.set_org("000000000000", rates={})


def test_the_control_plane_lists_an_organizations_accounts_with_their_tags_now(
    two_orgs: ScaleAws,
) -> None:
    other = two_orgs.orgs[1]
    control = ScaleAwsControl(two_orgs.endpoint_url)
    control.tag(other.account_id(2), {"listed": "yes"})

    listed = {a["id"]: a for a in control.accounts(other.management_account_id)}

    assert len(listed) == OTHER.accounts + 1
    assert listed[other.management_account_id]["tags"] == {}
    assert listed[other.account_id(2)]["tags"]["listed"] == "yes"
    sample = {a.id: (a.name, a.path) for a in other.sample_org().accounts}
    assert {i: (a["name"], a["path"]) for i, a in listed.items() if i in sample} == sample
