"""`orgsync demo`: the whole pipeline against an embedded simulated AWS organization.

It starts the simulated AWS on a free loopback port, builds a sample organization in it,
registers it through the `org-registration` queue, runs real workers, shows progress per stage,
then shows failed member roles fixed and re-driven with `retry-failed`, a tag change in AWS
turning into changed badges after the next sync, and one more tag change arriving as a change
event (EventBridge → SQS) with its badge following without any sync.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from orgsync.pipelines.account_state import AccountStatus
from orgsync.pipelines.badges import ORGANIZATION_BADGES
from orgsync.pipelines.orgs import resolve_org_id
from orgsync.pipelines.sql import load
from orgsync.services.adapters import db, keys
from orgsync.services.bootstrap import House
from orgsync.services.commands.inventory import feed_state
from orgsync.services.commands.output import table
from orgsync.services.errors import UserError
from orgsync.services.read_models import inventory
from orgsync.services.read_models.sync_progress import Snapshot
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.organization_events import create_feed, publish, tag_account
from orgsync.services.testing.sample_org import (
    OrgSpec,
    SampleOrg,
    build_organization,
    change_tags,
)
from orgsync.services.use_cases import redrive, registering, syncs

SQL = load("orgsync.services.processes")
NICKNAME = "demo"
DENIED = 3  # member roles the demo breaks on purpose, then fixes
LOG = Path(".orgsync") / "demo-worker.log"


def say(text: str = "") -> None:
    print(text, flush=True)


def run(settings: Settings, *, accounts: int, processes: int, threads: int, timeout: float) -> int:
    say(f"orgsync demo: {accounts} accounts in a simulated AWS organization")
    db.migrate(settings.database_url)
    if not settings.encryption_keys:
        path, key_id = keys.generate(settings, if_missing=True)
        say(f"  credential keys: {path}{' (new key ' + key_id + ')' if key_id else ''}")
    with SimulatedAws() as aws:
        org = build_organization(aws.endpoint_url, OrgSpec(accounts=accounts))
        say(
            f"  simulated AWS at {aws.endpoint_url}: organization {org.org_id}, "
            f"{len(org.ous)} OUs, {len(org.accounts)} member accounts"
        )
        denied = [a.id for a in org.accounts if not a.suspended][:DENIED]
        aws.faults.update(deny_assume_role=denied)
        worker = start_worker(settings, aws.endpoint_url, processes, threads)
        try:
            with House(settings) as house:
                return walkthrough(house, aws, org, denied, timeout)
        finally:
            worker.terminate()
            worker.wait(timeout=30)


def start_worker(settings: Settings, endpoint: str, processes: int, threads: int) -> Any:
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    LOG.parent.mkdir(exist_ok=True)
    say(f"  workers: {processes} process(es) x {threads} threads, JSON logs in {LOG}")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orgsync",
            "worker",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
        ],
        env=env,
        stdout=LOG.open("a"),
        stderr=subprocess.STDOUT,
    )


def walkthrough(
    house: House, aws: SimulatedAws, org: SampleOrg, denied: list[str], timeout: float
) -> int:
    say("\n1. register the organization through the org-registration queue")
    with house.connect() as conn:
        existing = resolve_org_id(conn, NICKNAME)
    request: dict[str, Any] = {
        "request_id": f"demo-{uuid.uuid4().hex[:8]}",
        "org_role_arn": org.org_role_arn,
        "org_session_name": "orgsync-demo",
        "org_session_duration": 3600,
        "member_role_name": org.member_role_name,
        "member_session_name": "orgsync-demo-member",
        "member_session_duration": 3600,
        "exclude_prefixes": ["sandbox-"],
        "auto_remove_suspended": False,
        "auto_badge": True,
        # the change-event feed: moto's EventBridge delivers Organizations events to this queue
        "events_queue_url": create_feed(aws.endpoint_url),
    }
    request.update({"org_id": existing} if existing else {"nickname": NICKNAME})
    registering.submit(house, request)
    verdict = registering.wait_verdict(house, request["request_id"], timeout)
    say(f"   verdict: {'accepted' if verdict.accepted else 'REJECTED'} as {verdict.org_id}")
    for problem in verdict.reasons:
        say(f"   reason: {problem.field}: {problem.message}")
    for warning in verdict.warnings:
        say(f"   warning: {warning}")
    if not verdict.accepted or verdict.org_id is None:
        raise UserError("the demo organization was rejected")
    org_id = verdict.org_id
    sync_id = syncs.wait_for(lambda: syncs.latest_sync(house, org_id), timeout, "no sync")

    say("\n2. sync: accounts flow through the stages")
    follow(house, sync_id, timeout)
    show_accounts(house, org_id)

    say(f"\n3. {len(denied)} member roles were denied; fix them in AWS and retry-failed")
    with house.connect() as conn:
        failed = inventory.failures(conn, org_id)
    say(table(failed, ["account_id", "name", "code", "attempts"]))
    aws.faults.update(deny_assume_role=[])
    redriven = redrive.retry_failed(house, org_id)  # what `orgsync retry-failed` runs
    say(f"   orgsync retry-failed --org {NICKNAME}: {redriven.describe()}")
    for sync_id in sorted({row["sync_id"] for row in failed}):
        follow(house, sync_id, timeout)
    with house.connect() as conn:
        still = inventory.failures(conn, org_id)
        ok = len(inventory.accounts(conn, org_id=org_id, status=AccountStatus.OK))
    say(f"   after retry-failed: {ok} accounts ok, {len(still)} still failing")

    say("\n4. change tags in AWS, sync again, see the badges follow")
    changed = [a for a in org.accounts if not a.suspended and a.id not in denied][:3]
    changes: dict[str, dict[str, str | None]] = {
        changed[0].id: {"env": "retired"},
        changed[1].id: {"owner": "platform-team"},
        changed[2].id: dict.fromkeys(changed[2].tags),
    }
    change_tags(aws.endpoint_url, changes)
    second = syncs.sync(house, org_id)
    follow(house, second, timeout)
    with house.connect() as conn:
        history = conn.execute(SQL["demo_badge_changes"], (second,)).fetchall()
    say(table(history, ["account_id", "key", "action", "old_value", "new_value"]))
    feed_step(house, aws, org_id, changed[0].id, timeout)
    say(
        f"\ndemo finished: `orgsync accounts --org {NICKNAME}` shows the inventory; "
        f"`orgsync orgs` the organization."
    )
    return 0


def feed_step(
    house: House, aws: SimulatedAws, org_id: str, account_id: str, timeout: float
) -> None:
    say("\n5. one more tag change, this time arriving as a change event: no sync")
    with house.connect() as conn:
        before = conn.execute(SQL["demo_syncs_started"]).fetchone()
    value = f"event-{uuid.uuid4().hex[:6]}"
    record = tag_account(aws.endpoint_url, account_id, {"env": value})
    sent = time.monotonic()
    publish(aws.endpoint_url, [record])
    say(f"   TagResource env={value} on {account_id}: sent to EventBridge, rule -> SQS queue")

    def badge() -> dict[str, Any] | None:
        with house.connect() as conn:
            row = conn.execute(SQL["demo_badge"], (account_id, value)).fetchone()
        return row

    syncs.wait_for(badge, timeout, "the badge did not follow the event")
    with house.connect() as conn:
        after = conn.execute(SQL["demo_syncs_started"]).fetchone()
        (shown,) = [o for o in inventory.organizations(conn) if o["org_id"] == org_id]
    assert before is not None and after is not None
    say(
        f"   badge env={value} after {time.monotonic() - sent:.1f} s; syncs started: "
        f"{after['n'] - before['n']}"
    )
    say(f"   orgsync orgs, feed: {feed_state(shown['feed'])}")


def follow(house: House, sync_id: str, timeout: float) -> None:
    """The sync's progress as `orgsync sync --wait` prints it: accounts past each stage."""
    last: list[str] = []
    start = time.monotonic()

    def show(state: dict[str, Any]) -> None:
        text = Snapshot(state["sync"], state["stages"]).line(time.monotonic() - start)
        counts = text.rsplit("  ", 1)[0]  # a new line when a count changes, not each second
        if [counts] != last:
            last[:] = [counts]
            say("   " + text)

    if sync_id:
        syncs.wait_sync(house, sync_id, timeout, on_progress=show)


def show_accounts(house: House, org_id: str) -> None:
    with house.connect() as conn:
        rows = inventory.accounts(conn, org_id=org_id, include_removed=True)
        excluded = inventory.excluded(conn, org_id)
    for row in rows:
        row["badges"] = ", ".join(
            f"{b['key']}={b['value']}" for b in row["badges"] if b["key"] not in ORGANIZATION_BADGES
        )
    say(table(rows, ["account_id", "name", "org_path", "status", "badges"]))
    say(f"   {len(rows)} accounts imported; {len(excluded)} seen but not imported:")
    say(table(excluded, ["account_id", "name", "reason"]))
