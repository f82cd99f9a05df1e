"""Failing member roles end as failures with their AWS code; fixed, `retry-failed` heals them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orgsync.services.adapters import db
from orgsync.services.adapters.aws import CLIENT_CONFIG
from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import OrgSpec, build_organization
from orgsync.services.use_cases import syncs
from tests.support.cli import TIMEOUT, orgsync, register_and_sync, request_for
from tests.support.workers import worker_env

pytestmark = pytest.mark.e2e
HTTP_ATTEMPTS = CLIENT_CONFIG.retries["max_attempts"] + 1  # botocore counts retries only


def retry_failed(settings: Settings, aws: SimulatedAws, *args: str) -> str:
    return orgsync_says(settings, aws, "retry-failed", *args)


def orgsync_says(settings: Settings, aws: SimulatedAws, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "orgsync", *args],
        env=worker_env(settings, aws.endpoint_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_denied_roles_fail_throttled_ones_recover_and_retry_failed_heals_the_denied(
    settings: Settings, house: House, aws: SimulatedAws, worker: Path
) -> None:
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=50, suspended=0, excluded=0))
    members = [a.id for a in org.accounts]
    denied, throttled, plain = members[:5], members[5:15], members[15:]
    aws.faults.update(deny_assume_role=denied, throttle_assume_role=dict.fromkeys(throttled, 2))

    register_and_sync(settings, request_for(org, "roles"))

    listed = {
        a["account_id"]: a for a in orgsync(settings, aws, "accounts", "--org", "roles", "--json")
    }
    assert set(listed) == {*members, org.management_account_id}
    statuses = {a: row["status"] for a, row in listed.items()}
    assert {a for a, s in statuses.items() if s == "ok"} == {
        *throttled,
        *plain,
        org.management_account_id,  # moto's "master" account is a member too
    }
    assert {a for a, s in statuses.items() if s == "assume_role_failed"} == set(denied)
    assert all(listed[a]["status_reason"].startswith("AccessDenied: ") for a in denied)
    failed = orgsync(settings, aws, "failed", "--org", "roles", "--json")
    assert sorted(f["account_id"] for f in failed) == sorted(denied)
    assert {(f["code"], f["attempts"]) for f in failed} == {("AccessDenied", 1)}
    assert all("not authorized to perform: sts:AssumeRole" in f["message"] for f in failed)
    assert all(f["first_failed_at"] and f["last_failed_at"] for f in failed)
    assert all(any("trust policy" in c for c in f["likely_causes"]) for f in failed)
    said = orgsync_says(settings, aws, "failed", "--org", "roles")
    org_id = failed[0]["org_id"]
    role = org.member_role_name
    assert f"5 account(s) of {org_id} failed with AccessDenied, assuming role {role}" in said
    assert "  - the external id differs" in said

    assert retry_failed(settings, aws, "--org", "roles", "--dry-run") == (
        "would queue 5 account(s) for validation"
    )
    aws.faults.update(deny_assume_role=[])
    assert retry_failed(settings, aws, "--org", "roles") == "queued 5 account(s) for validation"
    syncs.wait_sync(house, failed[0]["sync_id"], TIMEOUT)

    after = orgsync(settings, aws, "accounts", "--org", "roles", "--json")
    assert {a["status"] for a in after} == {"ok"} and len(after) == 51
    assert orgsync(settings, aws, "failed", "--org", "roles", "--json") == []
    calls = aws.faults.counts()["assume_role"]
    assert {a: calls.get(a) for a in plain} == dict.fromkeys(plain, 1)
    assert {a: calls.get(a) for a in throttled} == dict.fromkeys(throttled, 3)  # budget waits
    assert {a: calls.get(a) for a in denied} == dict.fromkeys(denied, 2)  # once, then the retry


def test_a_throttling_storm_longer_than_botocores_retries_never_fails_the_account(
    settings: Settings, aws: SimulatedAws, worker: Path
) -> None:
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=2, suspended=0, excluded=0))
    stormy, calm = org.accounts[0].id, org.accounts[1].id
    storm = 3 * HTTP_ATTEMPTS  # three times what botocore alone would try
    aws.faults.update(throttle_assume_role={stormy: storm})

    register_and_sync(settings, request_for(org, "storm"))

    listed = {
        a["account_id"]: a for a in orgsync(settings, aws, "accounts", "--org", "storm", "--json")
    }
    assert listed[calm]["status"] == listed[stormy]["status"] == "ok"
    assert orgsync(settings, aws, "failed", "--org", "storm", "--json") == []
    assert aws.faults.counts()["assume_role"][stormy] == storm + 1
    with db.connect(settings.database_url) as conn:
        budget = conn.execute(
            "SELECT throttled, rate FROM aws_budgets WHERE scope = 'service' AND api = 'AssumeRole'"
        ).fetchone()
    assert budget is not None and budget["throttled"] == storm
