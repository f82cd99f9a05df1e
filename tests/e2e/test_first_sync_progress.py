"""A user's first organization from the command line: `register` names the sync it started
and follows it; `sync ORG --wait` shows each stage and then a summary (plain lines, since
this is no terminal); the external id comes from a file, never a flag's value."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from orgsync.pipelines.where_now import FEED_ACTIONS
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import OrgSpec, build_organization
from orgsync.services.use_cases import iam_policy
from tests.support.cli import register_and_sync, request_for
from tests.support.workers import worker_env

pytestmark = pytest.mark.e2e
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def orgsync(settings: Settings, aws: SimulatedAws, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "orgsync", *args],
        env=worker_env(settings, aws.endpoint_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    return done.stdout


def test_register_follows_the_first_sync_and_sync_wait_shows_progress_and_a_summary(
    settings: Settings, aws: SimulatedAws, worker: Path, tmp_path: Path
) -> None:
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=6, suspended=1, excluded=1))
    external_id = tmp_path / "external-id"
    external_id.write_text("first-hour-id\n")

    out = orgsync(
        settings, aws, "register",
        "--nickname", "first",
        "--org-role-arn", org.org_role_arn,
        "--org-session-name", "orgsync",
        "--org-session-duration", "1h",
        "--member-role-name", org.member_role_name,
        "--member-session-name", "orgsync-member",
        "--member-session-duration", "15m",
        "--external-id-file", str(external_id),
        "--exclude-prefix", "sandbox-",
        "--follow",
    )  # fmt: skip

    lines = [line for line in out.splitlines() if not line.startswith("  warning ")]
    assert re.fullmatch(r"request \S+: accepted as o-\w+", lines[0])
    started = re.fullmatch(rf"sync ({UUID}) started \(`orgsync sync --attach \1` follows it\)",
                           lines[1])  # fmt: skip
    assert started, lines[1]
    assert lines[-3].startswith(f"sync {started[1]}: complete in ")
    assert re.fullmatch(r"  accounts: (\d+ \w+(, )?)+", lines[-2])
    assert re.fullmatch(r"  badge changes: [1-9]\d*; failed validations: 0", lines[-1])
    assert re.match(r"discovery walked \((\d+) accounts\).*reconciled \1/\1", lines[-4])

    out = orgsync(settings, aws, "sync", "first", "--wait")
    lines = out.splitlines()
    started_lines = [re.fullmatch(rf"full sync ({UUID}) of o-\w+ started", line) for line in lines]
    sync_id = next((m for m in started_lines if m), None)
    assert sync_id, lines
    progress = [line for line in lines if line.startswith("discovery ")]
    assert progress and all("\r" not in line for line in progress)
    assert re.match(r"discovery walked \((\d+) accounts\).*reconciled \1/\1", progress[-1])
    assert any(line.startswith(f"sync {sync_id[1]}: complete in ") for line in lines)
    (accounts,) = [line for line in lines if line.startswith("  accounts: ")]
    assert "1 suspended" in accounts and "ok" in accounts


def test_a_registration_and_a_sync_call_exactly_the_actions_of_the_role_policies(
    settings: Settings, aws: SimulatedAws, worker: Path
) -> None:
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=4, suspended=1, excluded=1))
    aws.faults.reset_counts()  # building the organization is not orgsync's doing

    register_and_sync(settings, request_for(org, "policy"))  # auto-badge on: every stage runs

    called = set(aws.faults.counts()["operations"])
    # the change-event feed's re-reads come only with events (tests/e2e/test_feed_e2e.py)
    synced = set(iam_policy.ORG_ROLE_ACTIONS) - set(FEED_ACTIONS)
    allowed = {action.split(":")[1] for action in synced}
    # AssumeRole is the principal's own call, into the roles whose trust policies allow it
    assert called == allowed | {"AssumeRole"}
