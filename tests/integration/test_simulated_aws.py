"""The simulated AWS injects the faults it is told to, and the sample org matches its spec."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
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
    OrgSpec,
    SampleOrg,
    Service,
    build_organization,
    change_tags,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
DENIED, ALLOWED = "210987654321", "345678901234"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatedAws]:
    with SimulatedAws() as simulated:
        yield simulated


@pytest.fixture(autouse=True)
def clean_faults(sim: SimulatedAws) -> None:
    sim.faults.reset()
    sim.faults.reset_counts()


@pytest.fixture
def control(sim: SimulatedAws) -> SimulatedAwsControl:
    return SimulatedAwsControl(sim.endpoint_url)


@pytest.fixture
def sample_org(sim: SimulatedAws, control: SimulatedAwsControl) -> SampleOrg:
    control.reset()
    return build_organization(sim.endpoint_url, OrgSpec())


def client(sim: SimulatedAws, service: Service, attempts: int = 1) -> Any:
    return boto3.client(
        service,
        endpoint_url=sim.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )


def error_of(call: Callable[[], Any]) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def assume(sts: Any, account_id: str) -> dict[str, Any]:
    return sts.assume_role(  # type: ignore[no-any-return]
        RoleArn=f"arn:aws:iam::{account_id}:role/OrgSyncMember", RoleSessionName="orgsync"
    )


def test_assume_role_is_denied_with_403_access_denied_only_for_the_chosen_account(
    sim: SimulatedAws,
) -> None:
    sim.faults.update(deny_assume_role={DENIED})
    sts = client(sim, "sts")

    with pytest.raises(ClientError) as caught:
        assume(sts, DENIED)
    allowed = assume(sts, ALLOWED)

    error: dict[str, Any] = dict(caught.value.response["Error"])
    assert (error["Code"], error["Type"]) == ("AccessDenied", "Sender")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    denied_arn = f"arn:aws:iam::{DENIED}:role/OrgSyncMember"
    assert error["Message"].endswith(f"sts:AssumeRole on resource: {denied_arn}")
    assert allowed["AssumedRoleUser"]["Arn"].startswith(f"arn:aws:sts::{ALLOWED}:assumed-role/")


def test_organizations_call_is_throttled_n_times_then_succeeds(
    sim: SimulatedAws, control: SimulatedAwsControl
) -> None:
    control.reset()  # moto's state is global to the process: no organization may exist
    sim.faults.update(throttle={"ListRoots": 2})
    org = client(sim, "organizations")

    errors = [error_of(org.list_roots) for _ in range(2)]
    # moto answers once the throttles are used up; no organization exists, hence this error.
    after = error_of(org.list_roots)

    assert errors == [("TooManyRequestsException", 400)] * 2
    assert after == ("AWSOrganizationsNotInUseException", 400)


def test_assume_role_into_an_account_is_throttled_n_times_then_succeeds(
    sim: SimulatedAws,
) -> None:
    sim.faults.update(throttle_assume_role={DENIED: 2})
    sts = client(sim, "sts")

    errors = [error_of(lambda: assume(sts, DENIED)) for _ in range(2)]
    other_account = assume(sts, ALLOWED)
    after = assume(sts, DENIED)

    assert errors == [("Throttling", 400)] * 2
    assert other_account["Credentials"]["AccessKeyId"].startswith("ASIA")
    assert after["Credentials"]["AccessKeyId"].startswith("ASIA")


def test_botocore_standard_retries_recognise_the_injected_throttle(sim: SimulatedAws) -> None:
    sim.faults.update(throttle={"GetCallerIdentity": 1})

    response = client(sim, "sts", attempts=3).get_caller_identity()

    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert sim.faults.counts()["operations"] == {"GetCallerIdentity": 2}


def test_failed_operation_returns_http_500_internal_failure_n_times(sim: SimulatedAws) -> None:
    sim.faults.update(fail_operations={"ListRoots": 1, "GetCallerIdentity": 1})
    org, sts = client(sim, "organizations"), client(sim, "sts")

    assert error_of(org.list_roots) == ("InternalFailure", 500)
    assert error_of(sts.get_caller_identity) == ("InternalFailure", 500)
    assert sts.get_caller_identity()["Account"] == "123456789012"


def test_throttle_ratio_throttles_about_that_fraction_and_repeats_with_the_same_seed(
    sim: SimulatedAws,
) -> None:
    sts = client(sim, "sts")

    def throttled_calls() -> list[int]:
        sim.faults.update(throttle_ratio=0.5, random_seed=7)
        outcomes = []
        for index in range(40):
            try:
                sts.get_caller_identity()
            except ClientError:
                outcomes.append(index)
        return outcomes

    first, second = throttled_calls(), throttled_calls()

    assert 10 <= len(first) <= 30
    assert first == second


def test_control_plane_drives_the_fault_state_from_a_second_client(
    sim: SimulatedAws, control: SimulatedAwsControl
) -> None:
    settings = control.set_faults(
        deny_assume_role={DENIED}, throttle={"ListAccounts": 3}, latency_ms=5
    )

    assert settings["deny_assume_role"] == [DENIED]
    assert sim.faults.deny_assume_role == {DENIED}
    assert control.faults()["throttle"] == {"ListAccounts": 3}
    assert error_of(lambda: assume(client(sim, "sts"), DENIED)) == ("AccessDenied", 403)

    control.reset_faults()

    assert sim.faults.snapshot() == control.faults()
    assert control.faults()["deny_assume_role"] == []
    assert assume(client(sim, "sts"), DENIED)["AssumedRoleUser"]


def test_control_plane_rejects_an_unknown_setting_or_route_with_its_reason(
    sim: SimulatedAws, control: SimulatedAwsControl
) -> None:
    with pytest.raises(ControlPlaneError, match="unknown fault setting 'thrash'"):
        control.set_faults(thrash=1)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{sim.endpoint_url}/_sim/nothing", timeout=5)
    assert caught.value.code == 404


def test_counts_count_assume_role_per_target_account_failed_or_not(
    sim: SimulatedAws, control: SimulatedAwsControl
) -> None:
    control.set_faults(deny_assume_role=[DENIED])
    sts = client(sim, "sts")
    for _ in range(3):
        error_of(lambda: assume(sts, DENIED))
    assume(sts, ALLOWED)
    sts.get_caller_identity()

    counts = control.counts()
    control.reset_counts()

    assert counts == {
        "operations": {"AssumeRole": 4, "GetCallerIdentity": 1},
        "assume_role": {DENIED: 3, ALLOWED: 1},
        "throttled": {},
    }
    assert control.counts() == {"operations": {}, "assume_role": {}, "throttled": {}}


def test_moto_api_requests_pass_through_and_are_not_counted(
    control: SimulatedAwsControl,
) -> None:
    control.set_faults(throttle_ratio=1.0)

    control.seed(1)
    control.reset()

    assert control.counts() == {"operations": {}, "assume_role": {}, "throttled": {}}


def test_latency_adds_about_the_configured_delay(sim: SimulatedAws) -> None:
    sts = client(sim, "sts")
    sts.get_caller_identity()  # first call pays for connection set-up

    def three_calls() -> float:
        started = time.perf_counter()
        for _ in range(3):
            sts.get_caller_identity()
        return time.perf_counter() - started

    baseline = three_calls()
    sim.faults.update(latency_ms=150)
    delayed = three_calls()

    assert 0.43 <= delayed - baseline <= 0.75


def test_sample_org_has_the_spec_number_of_accounts_suspended_and_excluded(
    sim: SimulatedAws, sample_org: SampleOrg
) -> None:
    spec = OrgSpec()
    org = client(sim, "organizations", attempts=3)
    listed = [
        account
        for page in org.get_paginator("list_accounts").paginate()
        for account in page["Accounts"]
    ]
    members = [a for a in listed if a["Id"] != sample_org.management_account_id]

    assert len(sample_org.accounts) == len(members) == spec.accounts
    suspended = {a["Id"] for a in members if a["Status"] == "SUSPENDED"}
    assert suspended == {a.id for a in sample_org.accounts if a.suspended}
    assert len(suspended) == spec.suspended
    excluded = [a for a in members if a["Name"].startswith(spec.excluded_prefix)]
    assert len(excluded) == spec.excluded
    one = sample_org.accounts[0]
    tags = org.list_tags_for_resource(ResourceId=one.id)["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == one.tags
    assert len(one.tags) == spec.tags_per_account
    role = client(sim, "iam").get_role(RoleName="OrgSyncReadOnly")["Role"]
    assert role["Arn"] == sample_org.org_role_arn


def test_sample_org_paths_match_a_walk_up_list_parents(
    sim: SimulatedAws, sample_org: SampleOrg
) -> None:
    org = client(sim, "organizations", attempts=3)
    ou_names: dict[str, str] = {}

    def walked_path(child_id: str) -> str:
        names: list[str] = []
        while parents := org.list_parents(ChildId=child_id)["Parents"]:
            parent = parents[0]
            if parent["Type"] == "ROOT":
                names.append("Root")
                break
            if parent["Id"] not in ou_names:
                ou = org.describe_organizational_unit(OrganizationalUnitId=parent["Id"])
                ou_names[parent["Id"]] = ou["OrganizationalUnit"]["Name"]
            names.append(ou_names[parent["Id"]])
            child_id = parent["Id"]
        return "/".join(reversed(names))

    for account in sample_org.accounts:
        assert walked_path(account.id) == account.path, account.name
    for ou_id, path in sample_org.ous.items():
        assert f"{walked_path(ou_id)}/{ou_names[ou_id]}" == path


def test_sample_org_ous_nest_to_the_spec_depth_with_accounts_at_every_level(
    sample_org: SampleOrg,
) -> None:
    spec = OrgSpec()

    levels = {path.count("/") for path in sample_org.ous.values()}
    account_levels = {account.path.count("/") for account in sample_org.accounts}

    assert len(sample_org.ous) == sum(spec.branching**level for level in range(1, spec.depth + 1))
    assert levels == set(range(1, spec.depth + 1))
    assert account_levels == set(range(spec.depth + 1))
    assert "Root/Engineering/Prod" in sample_org.ous.values()


def test_change_tags_sets_and_removes_keys(sim: SimulatedAws, sample_org: SampleOrg) -> None:
    account = sample_org.accounts[0]

    change_tags(sim.endpoint_url, {account.id: {"env": "retired", "team": None, "owner": "x"}})

    org = client(sim, "organizations")
    tags = org.list_tags_for_resource(ResourceId=account.id)["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"env": "retired", "owner": "x"}


def test_same_seed_gives_the_same_ids_after_a_reset(
    sim: SimulatedAws, control: SimulatedAwsControl
) -> None:
    spec = OrgSpec(accounts=6, depth=1, suspended=1, excluded=1, seed=7)

    def build() -> SampleOrg:
        control.reset()
        return build_organization(sim.endpoint_url, spec)

    first, second = build(), build()

    assert first.org_id == second.org_id
    assert list(first.ous) == list(second.ous)
    assert [a.id for a in first.accounts] == [a.id for a in second.accounts]
    assert first == second


def test_module_entry_point_serves_until_sigterm_and_reports_its_port(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "orgsync.services.testing.moto_aws", "--port", "0"),
            *("--port-file", str(port_file), "--seed", "3", "--latency-ms", "7"),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_until(lambda: port_file.exists() or process.poll() is not None, 15, "the port file")
        port = int(port_file.read_text())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/faults", timeout=5) as r:
            faults = json.load(r)
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=15)

    assert faults["latency_ms"] == 7
    assert process.returncode == 0
    assert f"simulated AWS listening on http://127.0.0.1:{port}" in out
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/faults", timeout=2)
