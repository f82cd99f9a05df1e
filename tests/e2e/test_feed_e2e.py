"""A tag changed in AWS reaches the badges through EventBridge → SQS → `orgsync worker` (stage
`events`), with no sync; `orgsync orgs` shows the feed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orgsync.services.adapters import db
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.organization_events import (
    cloudtrail_record,
    create_feed,
    publish,
    tag_account,
)
from orgsync.services.testing.sample_org import OrgSpec, aws_client, build_organization
from orgsync.services.use_cases import iam_policy
from tests.support.cli import orgsync, register_and_sync, request_for
from tests.support.waiting import wait_until
from tests.support.workers import worker_env

pytestmark = pytest.mark.e2e
TIMEOUT = 60


def badge(settings: Settings, account_id: str, key: str) -> str | None:
    with db.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT value FROM badges WHERE account_id = %s AND key = %s", (account_id, key)
        ).fetchone()
    return None if row is None else str(row["value"])


def full_syncs(settings: Settings, org_id: str) -> int:
    with db.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM syncs WHERE org_id = %s AND trigger <> 'events'", (org_id,)
        ).fetchone()
    assert row is not None
    return int(row["n"])


def test_a_tag_change_event_reaches_the_badge_without_a_sync(
    settings: Settings, aws: SimulatedAws, worker: Path
) -> None:
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=8, suspended=0, excluded=0))
    url = create_feed(aws.endpoint_url)
    org_id = register_and_sync(settings, request_for(org, "feed", events_queue_url=url))
    syncs = full_syncs(settings, org_id)
    account = org.accounts[0].id

    publish(aws.endpoint_url, [tag_account(aws.endpoint_url, account, {"team": "from-event"})])
    wait_until(lambda: badge(settings, account, "team") == "from-event", TIMEOUT, "the badge")
    assert full_syncs(settings, org_id) == syncs  # no sync: the event did the work

    (shown,) = orgsync(settings, aws, "orgs", "--json")
    assert shown["feed"]["queue"] == url
    assert shown["feed"]["handled"] == 1 and shown["feed"]["error"] is None
    assert shown["feed"]["last_event_at"] and shown["feed"]["lag_seconds"] < TIMEOUT


def test_a_queue_deleted_under_the_worker_is_shown_with_its_reason(
    settings: Settings, aws: SimulatedAws, worker: Path
) -> None:
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=3, suspended=0, excluded=0))
    url = create_feed(aws.endpoint_url)
    register_and_sync(settings, request_for(org, "gone", events_queue_url=url))
    aws_client(aws.endpoint_url, "sqs").delete_queue(QueueUrl=url)

    def error() -> str | None:
        (shown,) = orgsync(settings, aws, "orgs", "--json")
        return (shown["feed"] or {}).get("error")

    assert "NonExistentQueue" in wait_until(error, TIMEOUT, "the feed's error")


def test_the_events_stage_runs_alone_beside_the_queue_stages(
    settings: Settings, aws: SimulatedAws, tmp_path: Path
) -> None:
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=3, suspended=0, excluded=0))
    url = create_feed(aws.endpoint_url)
    env = worker_env(settings, aws.endpoint_url)
    stages = "registration,discovery,validation,harvest,reconcile"
    logs = {name: tmp_path / f"{name}.log" for name in ("queues", "events")}
    processes = []
    for name, chosen in (("queues", stages), ("events", "events")):
        with logs[name].open("w") as out:
            argv = [sys.executable, "-m", "orgsync", "worker", "--stages", chosen]
            processes.append(subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT))
    try:
        register_and_sync(settings, request_for(org, "alone", events_queue_url=url))
        account = org.accounts[0].id
        publish(aws.endpoint_url, [tag_account(aws.endpoint_url, account, {"team": "alone"})])
        wait_until(lambda: badge(settings, account, "team") == "alone", TIMEOUT, "the badge")
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    assert "feed_event" in logs["events"].read_text()
    assert "feed_event" not in logs["queues"].read_text()


def test_a_moved_account_gets_its_new_path_calling_only_the_policys_actions(
    settings: Settings, aws: SimulatedAws, worker: Path
) -> None:
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=6, suspended=0, excluded=0))
    url = create_feed(aws.endpoint_url)
    register_and_sync(settings, request_for(org, "moves", events_queue_url=url))
    account = next(a for a in org.accounts if a.parent_id != org.root_id)
    orgs = aws_client(aws.endpoint_url, "organizations")
    orgs.move_account(
        AccountId=account.id, SourceParentId=account.parent_id, DestinationParentId=org.root_id
    )
    params = {
        "accountId": account.id,
        "sourceParentId": account.parent_id,
        "destinationParentId": org.root_id,
    }
    aws.faults.reset_counts()
    publish(aws.endpoint_url, [cloudtrail_record("MoveAccount", params)])
    wait_until(
        lambda: badge(settings, account.id, "cloud_org_path") == "Root", TIMEOUT, "the new path"
    )

    called = set(aws.faults.counts()["operations"]) - {"PutEvents"}  # the test's own call
    org_role = {action.split(":")[1] for action in iam_policy.ORG_ROLE_ACTIONS}
    queue = {"ReceiveMessage", "DeleteMessageBatch"}  # sqs:ReceiveMessage, sqs:DeleteMessage
    assert {"DescribeAccount", "ListParents"} <= called
    assert called <= org_role | queue | {"AssumeRole"}
