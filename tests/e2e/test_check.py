"""`orgsync check --org`: the organization and member roles, and the change-event queue, of an
organization a real worker registered and synced (the checks that need no worker are in
tests/integration/test_check.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from tests.support.check import verdicts
from tests.support.cli import register_and_sync, request_for

pytestmark = pytest.mark.e2e


def test_check_org_assumes_the_organization_and_member_roles(
    ready: Settings,
    settings: Settings,
    aws_env: SimulatedAws,
    worker: Path,
) -> None:
    from orgsync.services.testing.sample_org import OrgSpec, build_organization

    org = build_organization(aws_env.endpoint_url, OrgSpec(accounts=3, suspended=0, excluded=0))
    register_and_sync(settings, request_for(org, "checked"))
    found = verdicts(ready, "checked")
    assert (found["org role"].ok, found["member role"].ok) == (True, True), found

    members = [a.id for a in org.accounts]
    aws_env.faults.update(deny_assume_role=members)
    found = verdicts(ready, "checked")
    assert (found["org role"].ok, found["member role"].ok) == (True, False)
    assert "AccessDenied" in found["member role"].detail
    assert "likely: the role does not exist" in found["member role"].detail
    assert "member-role-stackset.yaml" in found["member role"].fix
    assert "member-role.yaml to its management account" in found["member role"].fix

    aws_env.faults.update(deny_assume_role=[org.management_account_id])
    found = verdicts(ready, "checked")
    assert found["org role"].ok is False
    assert "cannot assume the organization role" in found["org role"].detail
    assert "trust policy does not name the principal" in found["org role"].detail
    assert "orgsync iam-policy --org" in found["org role"].fix

    assert verdicts(ready, "nobody")["org role"].fix == "see `orgsync orgs`"
    assert "events" not in found  # no queue, no check


def test_check_org_checks_the_change_event_queue(
    ready: Settings,
    settings: Settings,
    aws_env: SimulatedAws,
    worker: Path,
) -> None:
    from orgsync.services.testing.organization_events import create_feed
    from orgsync.services.testing.sample_org import OrgSpec, aws_client, build_organization

    org = build_organization(aws_env.endpoint_url, OrgSpec(accounts=2, suspended=0, excluded=0))
    url = create_feed(aws_env.endpoint_url)
    register_and_sync(settings, request_for(org, "queued", events_queue_url=url))
    assert verdicts(ready, "queued")["events"].ok is True
    aws_client(aws_env.endpoint_url, "sqs").delete_queue(QueueUrl=url)
    found = verdicts(ready, "queued")["events"]
    assert found.ok is False and "NonExistentQueue" in found.detail
    assert "events-queue.yaml" in found.fix
