"""The scale simulator is faithful: one organization synced through moto and through it gives
the same inventory (accounts, statuses, paths, tags, badges, exclusions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import OrgSpec, build_organization
from orgsync.services.testing.scale_aws import ScaleAws
from tests.support.cli import orgsync, register_and_sync, request_for
from tests.support.workers import running_worker

pytestmark = pytest.mark.e2e

SPEC = OrgSpec(accounts=200, depth=3, branching=3, suspended=4, excluded=3, tags_per_account=3)


def inventory(settings: Settings, aws: Any, nickname: str, org_id: str) -> dict[str, Any]:
    """What `orgsync accounts` shows, keyed by account name; ids that differ by simulator
    (account ids, the organization's id and nickname) are left out or replaced."""

    def same_org(value: str) -> str:
        return {org_id: "<org id>", nickname: "<nickname>"}.get(value, value)

    accounts = orgsync(settings, aws, "accounts", "--org", nickname, "--json")
    excluded = orgsync(settings, aws, "accounts", "--org", nickname, "--excluded", "--json")
    return {
        "accounts": {
            a["name"]: {
                "email": a["email"],
                "org_path": a["org_path"],
                "aws_state": a["aws_state"],
                "status": a["status"],
                "status_reason": a["status_reason"],
                "managed_by_org": a["managed_by_org"],
                "tags": a["tags"],
                "badges": [{**b, "value": same_org(b["value"])} for b in a["badges"]],
            }
            for a in accounts
        },
        "excluded": {e["name"]: (e["org_path"], e["aws_state"], e["reason"]) for e in excluded},
    }


def test_one_organization_synced_through_moto_and_the_scale_simulator_is_the_same_inventory(
    settings: Settings, aws: SimulatedAws, tmp_path: Path
) -> None:
    built = build_organization(aws.endpoint_url, SPEC)
    with running_worker(settings, aws.endpoint_url, tmp_path / "moto-worker.log"):
        moto_org = register_and_sync(settings, request_for(built, "via-moto"))
    # taken now: both organizations hold the management account, and the second sync takes it
    through_moto = inventory(settings, aws, "via-moto", moto_org)

    with (
        ScaleAws(SPEC) as scale,
        running_worker(settings, scale.endpoint_url, tmp_path / "scale-worker.log"),
    ):
        scale_org = register_and_sync(settings, request_for(scale.org.sample_org(), "via-scale"))
    through_scale = inventory(settings, aws, "via-scale", scale_org)

    assert len(through_moto["accounts"]) == SPEC.accounts - SPEC.excluded + 1  # + management
    assert len(through_moto["excluded"]) == SPEC.excluded
    assert through_scale == through_moto
