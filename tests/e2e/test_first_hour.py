"""The README's first hour, run as written against the simulated AWS: its shell blocks, in order,
with the AWS CLI and orgsync pointed at moto (`AWS_ENDPOINT_URL`), from an organization with no
orgsync role in it to a first sync. moto deploys the templates (a StackSet resource it does not
know is passed over with a warning) and does not evaluate trust policies, so what this proves is
that every command, flag, template parameter and name the README gives works together."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import OrgSpec, build_organization
from tests.support.workers import worker_env

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def first_hour() -> list[str]:
    """The command lines of the README's first hour, as a user copies them."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Your first hour")[1].split("\n## ")[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 5
    return "\n".join(blocks).splitlines()


def test_the_readmes_first_hour_works_as_written_against_the_simulated_aws(
    settings: Settings, aws: SimulatedAws, tmp_path: Path
) -> None:
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=6, suspended=0, excluded=0))
    installing = ("python3 -m venv", "pip install")  # this test runs in an installed orgsync
    lines = [line for line in first_hour() if not line.startswith(installing)]
    # before any worker has declared the queues, check fails on them and says to start one
    lines = [
        "orgsync check || true" if line.startswith("orgsync check  ") else line for line in lines
    ]
    follow = (
        "orgsync sync --attach \"$(orgsync orgs --json | python3 -c 'import json, sys;"
        ' print(json.load(sys.stdin)[0]["last_sync"]["sync_id"])\')" --timeout 2m'
    )
    script = "set -eo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + "\n".join(
        [*lines, follow]
    )
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")  # the commands name deploy/aws/...
    env = worker_env(settings, aws.endpoint_url) | {
        "ORGSYNC_ENCRYPTION_KEYS": "",  # the key file `orgsync keys generate` writes, instead
        "ORGSYNC_ENCRYPTION_KEY_FILE": str(tmp_path / "keys"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }

    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"request \S+: accepted as o-", done.stdout), done.stdout
    assert (tmp_path / "external-id").stat().st_mode & 0o077 == 0
    listed = subprocess.run(
        [sys.executable, "-m", "orgsync", "accounts", "--org", "prod-org", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    accounts = json.loads(listed.stdout)
    assert {a["account_id"] for a in accounts} == {
        *(a.id for a in org.accounts),
        org.management_account_id,
    }
    assert {a["status"] for a in accounts} == {"ok"}
