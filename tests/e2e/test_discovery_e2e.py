"""Discovery through the real workers: scope, exclusions, suspended accounts and adoption.

An organization four OU levels deep in the simulated AWS; the registration goes through
RabbitMQ, the CLI (in subprocesses) shows what was imported, what was not and why.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import OrgSpec, SampleOrg, build_organization
from orgsync.services.use_cases import registering, syncs
from tests.support.cli import request_for
from tests.support.workers import running_worker, worker_env

pytestmark = pytest.mark.e2e
TIMEOUT = 120
SCOPE = "Root/Engineering"


@pytest.fixture
def worker(settings: Settings, aws: SimulatedAws, tmp_path: Path) -> Iterator[Path]:
    """The usual worker, with the removal guard holding even a few removals (this organization
    is small: ORGSYNC_REMOVAL_MIN's default would let them through)."""
    log = tmp_path / "worker.log"
    with running_worker(settings, aws.endpoint_url, log, ORGSYNC_REMOVAL_MIN="0"):
        yield log


def orgsync(settings: Settings, aws: SimulatedAws, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orgsync", *args],
        env=worker_env(settings, aws.endpoint_url),
        capture_output=True,
        text=True,
        timeout=60,
    )


def listed(settings: Settings, aws: SimulatedAws, *args: str) -> Any:
    done = orgsync(settings, aws, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_for_sync(house: House, org_id: str) -> dict[str, Any]:
    sync_id = syncs.latest_sync(house, org_id)
    assert sync_id is not None
    progress = syncs.wait_sync(house, sync_id, TIMEOUT)
    return dict(progress["sync"])


def in_scope(org: SampleOrg) -> list[Any]:
    return [a for a in org.accounts if a.path == SCOPE or a.path.startswith(SCOPE + "/")]


def test_discovery_imports_the_scoped_subtree_explains_the_rest_and_adopts_a_standalone_account(
    settings: Settings, house: House, aws: SimulatedAws, worker: Path
) -> None:
    org = build_organization(
        aws.endpoint_url, OrgSpec(accounts=24, depth=4, branching=2, suspended=4, excluded=3)
    )
    scope_id = next(ou for ou, path in org.ous.items() if path == SCOPE)
    wanted = {a.id: a for a in in_scope(org) if not a.name.startswith("sandbox-")}
    deepest = max(wanted.values(), key=lambda a: a.path.count("/"))
    assert deepest.path.count("/") == 4  # an account four OU levels under the root
    added = orgsync(
        settings,
        aws,
        "account",
        "add",
        deepest.id,
        "--role-arn",
        f"arn:aws:iam::{deepest.id}:role/Standalone",
    )
    assert added.returncode == 0, added.stderr

    request = request_for(org, "disc", limit_ou_ids=[scope_id], auto_badge=False)
    registering.submit(house, request)
    verdict = registering.wait_verdict(house, request["request_id"], TIMEOUT)
    assert verdict.accepted and verdict.org_id is not None, verdict.reasons
    sync = wait_for_sync(house, verdict.org_id)

    accounts = {a["account_id"]: a for a in listed(settings, aws, "accounts", "--org", "disc")}
    assert accounts.keys() == wanted.keys()
    for account_id, expected in wanted.items():
        assert accounts[account_id]["org_path"] == expected.path
        assert accounts[account_id]["status"] == ("suspended" if expected.suspended else "ok")
    assert accounts[deepest.id]["managed_by_org"] is True

    reasons = {
        e["account_id"]: e["reason"]
        for e in listed(settings, aws, "accounts", "--org", "disc", "--excluded")
    }
    for account in org.accounts:
        if account.id not in wanted:
            expected_reason = "name_prefix:sandbox-" if account in in_scope(org) else "out_of_scope"
            assert reasons[account.id] == expected_reason
    (row,) = listed(settings, aws, "orgs")
    assert row["last_sync"]["counts"] == sync["counts"]
    assert sync["complete"] is True
    assert sync["counts"]["seen"] == len(org.accounts) + 1  # and the management account

    refused = orgsync(settings, aws, "account", "delete", deepest.id)
    assert refused.returncode == 2
    assert f"is managed by organization {verdict.org_id} (disc)" in refused.stderr

    suspended = {a.id for a in wanted.values() if a.suspended}
    assert suspended  # the seeded organization has suspended accounts in scope
    update = orgsync(settings, aws, "update", "disc", "--auto-remove-suspended", "--json")
    assert update.returncode == 0, update.stderr
    sync = wait_for_sync(house, verdict.org_id)
    # that is more than 20 % of the organization's accounts: the removal guard holds the sync
    assert sync["held"] is not None and sync["counts"]["removed"] == {}
    assert sync["held"].startswith(f"this walk would remove {len(suspended)} of ")
    confirmed = orgsync(settings, aws, "sync", "disc", "--confirm-removals", "--wait", "--json")
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    sync = json.loads(confirmed.stdout)["sync"]
    assert sync["held"] is None and sync["confirm_removals"] is True
    assert sync["counts"]["removed"] == {"suspended": len(suspended)}
    removed = listed(settings, aws, "accounts", "--org", "disc", "--status", "removed")
    assert {(a["account_id"], a["status_reason"]) for a in removed} == {
        (account_id, "suspended") for account_id in suspended
    }
