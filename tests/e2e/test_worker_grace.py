"""SIGTERM to a worker whose organization's rate budget is at its floor (issue 25): it stops
within its grace period, hands the walk it was on back to RabbitMQ undone, and a worker started
after it finishes the same sync with every account right: none lost, none twice, none wrong."""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from orgsync.services.adapters import db
from orgsync.services.bootstrap import House
from orgsync.services.read_models import inventory
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import OrgSpec, build_organization, change_tags
from orgsync.services.use_cases import syncs
from tests.support.cli import TIMEOUT, orgsync, register_and_sync, request_for
from tests.support.waiting import wait_until
from tests.support.workers import running_worker

pytestmark = pytest.mark.e2e

GRACE_S = 10
# every Organizations call of the organization at the lowest rate accepted: the walk's next
# slot is always 2 s away, more than a re-sync's call may wait, so its calls are deferred and
# the walk naps between them (15 list calls: half a minute, were it left to finish)
AT_THE_FLOOR = "*=0.5:0.5"


@pytest.fixture
def settings(settings: Settings, own_broker_url: str) -> Settings:
    """A vhost of its own: the messages handed back stay for this test's workers alone."""
    return dataclasses.replace(settings, broker_url=own_broker_url)


def list_calls(settings: Settings, org_id: str) -> int:
    with db.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(calls), 0) AS n FROM aws_budgets"
            " WHERE scope = %s AND api LIKE 'List%%ForParent'",
            (org_id,),
        ).fetchone()
    return int(row["n"]) if row else 0


def log_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            continue
    return [line for line in lines if isinstance(line, dict)]


def discovery_lines(path: Path, sync_id: str) -> list[dict[str, Any]]:
    return [
        line
        for line in log_lines(path)
        if line.get("event") == "stage"
        and line.get("stage") == "discovery"
        and line.get("sync_id") == sync_id
    ]


def test_a_worker_given_sigterm_mid_walk_exits_within_its_grace_and_the_sync_still_ends_right(
    settings: Settings, house: House, aws: SimulatedAws, tmp_path: Path
) -> None:
    org = build_organization(
        aws.endpoint_url, OrgSpec(accounts=20, depth=2, branching=2, suspended=0, excluded=0)
    )
    with running_worker(settings, aws.endpoint_url, tmp_path / "first.log", threads=4):
        org_id = register_and_sync(settings, request_for(org, "grace"))
    changed = {a.id: {"team": f"team-{i}"} for i, a in enumerate(org.accounts[:5])}
    change_tags(aws.endpoint_url, changed)

    slow = tmp_path / "slow.log"
    env = {"ORGSYNC_WORKER_GRACE": str(GRACE_S), "ORGSYNC_AWS_RATES": AT_THE_FLOOR}
    with running_worker(settings, aws.endpoint_url, slow, threads=4, **env) as worker:
        before = list_calls(settings, org_id)
        sync_id = syncs.sync(house, org_id)  # a re-sync: bulk work, which may wait a second
        wait_until(lambda: list_calls(settings, org_id) > before, 60, "the walk under way")
        sent = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=6 * GRACE_S)
        exit_s = time.monotonic() - sent
    print(f"exited {exit_s:.2f} s after SIGTERM (grace {GRACE_S} s)")
    assert exit_s <= GRACE_S, f"exited {exit_s:.1f} s after SIGTERM, grace {GRACE_S} s"
    assert code == 0
    handed_back = {
        (line["queue"], line["started"])
        for line in log_lines(slow)
        if line.get("event") == "message_handed_back"
    }  # the walk, begun; maybe a page it sent on, which came after the signal
    assert ("org-registered", True) in handed_back
    assert {started for queue, started in handed_back if queue != "org-registered"} <= {False}
    assert discovery_lines(slow, sync_id) == []  # neither finished, nor retried, nor failed
    assert "Failed to process message" not in slow.read_text()
    assert not inventory.sync_finished(syncs.progress(house, sync_id))

    again = tmp_path / "again.log"
    with running_worker(settings, aws.endpoint_url, again, threads=4):
        syncs.wait_sync(house, sync_id, TIMEOUT)
    [walk] = discovery_lines(again, sync_id)
    assert walk["outcome"] == "done" and walk["complete"] is True and walk["delivery"] == 1

    accounts = orgsync(settings, aws, "accounts", "--org", "grace", "--json")
    ids = [a["account_id"] for a in accounts]
    assert len(ids) == len(set(ids)) == len(org.accounts) + 1  # the management account too
    for account in org.accounts:
        [listed] = [a for a in accounts if a["account_id"] == account.id]
        tags = {**account.tags, **changed.get(account.id, {})}
        badges = {b["key"]: b["value"] for b in listed["badges"]}
        assert listed["status"] == "ok" and listed["tags"] == tags
        assert {k: badges.get(k) for k in tags} == tags
    assert orgsync(settings, aws, "failed", "--org", "grace", "--json") == []
    queues = orgsync(settings, aws, "queues", "--json")
    assert sum(q["dead_lettered"] for q in queues) == 0


def test_a_worker_whose_walk_hangs_in_an_aws_call_is_cut_short_at_the_deadline_and_loses_nothing(
    settings: Settings, house: House, aws: SimulatedAws, tmp_path: Path
) -> None:
    org = build_organization(
        aws.endpoint_url, OrgSpec(accounts=6, depth=1, branching=2, suspended=0, excluded=0)
    )
    with running_worker(settings, aws.endpoint_url, tmp_path / "first.log", threads=2):
        org_id = register_and_sync(settings, request_for(org, "hung"))
    aws.faults.reset_counts()
    aws.faults.update(latency_ms=25_000)  # every answer comes after 25 s: past any grace

    hung = tmp_path / "hung.log"
    grace_s = 5
    env = {"ORGSYNC_WORKER_GRACE": str(grace_s)}
    with running_worker(settings, aws.endpoint_url, hung, threads=2, **env) as worker:
        sync_id = syncs.sync(house, org_id)
        wait_until(lambda: aws.faults.counts()["operations"], 60, "the walk's first AWS call")
        sent = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=6 * grace_s)
        exit_s = time.monotonic() - sent
    print(f"exited {exit_s:.2f} s after SIGTERM (grace {grace_s} s)")
    assert exit_s <= grace_s and code == 0
    [stopped] = [line for line in log_lines(hung) if line.get("event") == "worker_stopped"]
    assert stopped["cut_short"] == 1 and stopped["handed_back"] == []
    assert discovery_lines(hung, sync_id) == []

    aws.faults.update(latency_ms=0)
    again = tmp_path / "again.log"
    with running_worker(settings, aws.endpoint_url, again, threads=2):
        syncs.wait_sync(house, sync_id, TIMEOUT)
    [walk] = discovery_lines(again, sync_id)
    assert walk["outcome"] == "done" and walk["complete"] is True
    accounts = orgsync(settings, aws, "accounts", "--org", "hung", "--json")
    assert sorted(a["account_id"] for a in accounts) == sorted(
        [*(a.id for a in org.accounts), org.management_account_id]
    )
    assert {a["status"] for a in accounts} == {"ok"}
