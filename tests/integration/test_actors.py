"""The actors as `orgsync worker` builds them, on dramatiq's StubBroker and real PostgreSQL:
the middleware decodes, records what it cannot read, logs one line per message, and a page
goes through the stage it names."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import psycopg
import pytest
from dramatiq.brokers.stub import StubBroker
from structlog.testing import capture_logs

from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.events import AccountsDiscovered, TagsHarvested
from orgsync.pipelines.registration import store_organization
from orgsync.pipelines.request_rules import Credentials, Filters
from orgsync.services.processes.actors import build
from orgsync.services.settings import Settings

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[dict[str, Any]]
ORG = "o-actortest1"
SYNC = str(uuid.uuid4())
CREDENTIALS = Credentials(
    org_role_arn="arn:aws:iam::123456789012:role/OrgSyncReadOnly",
    org_session_name="orgsync-test",
    org_session_duration=3600,
    member_role_name="OrgSyncMember",
    member_session_name="orgsync-member",
    member_session_duration=900,
)


@pytest.fixture
def stub(settings: Settings, conn: Conn, keyring: Keyring) -> Iterator[StubBroker]:
    store_organization(conn, keyring, ORG, "actors", CREDENTIALS, Filters(auto_badge=True))
    conn.execute(
        "INSERT INTO syncs (sync_id, org_id, trigger) VALUES (%s, %s, 'test')", (SYNC, ORG)
    )
    conn.execute(
        "INSERT INTO accounts (account_id, org_id, name, org_path, tags, sync_id, stage)"
        " VALUES ('123456789012', %s, 'a', 'Root/A', '{\"env\": \"prod\"}', %s, 'harvested')",
        (ORG, SYNC),
    )
    conn.commit()
    broker = build(settings, StubBroker())
    worker = dramatiq.Worker(broker, worker_timeout=100, worker_threads=2)
    worker.start()
    try:
        yield broker
    finally:
        worker.stop()
        broker.close()


def send(broker: StubBroker, queue: str, actor: str, *args: Any) -> None:
    broker.enqueue(
        dramatiq.Message(queue_name=queue, actor_name=actor, args=args, kwargs={}, options={})
    )
    broker.join(queue, fail_fast=True, timeout=30_000)


def test_a_page_goes_through_its_stage_and_an_unreadable_one_is_recorded_not_dead_lettered(
    stub: StubBroker, conn: Conn
) -> None:
    page = TagsHarvested(org_id=ORG, sync_id=SYNC, account_ids=("123456789012",))
    send(stub, page.queue, page.actor, page.payload())
    badges = conn.execute("SELECT key, value FROM badges ORDER BY key").fetchall()
    assert {"key": "env", "value": "prod"} in badges

    discovered = AccountsDiscovered(org_id=ORG, sync_id=SYNC, account_ids=("999999999999",))
    send(stub, discovered.queue, discovered.actor, discovered.payload())
    send(stub, discovered.queue, discovered.actor, {"org_id": ORG, "account_ids": "x"})

    rows = conn.execute("SELECT queue_name, reason, body FROM rejected_messages ORDER BY id")
    recorded = [(r["queue_name"], r["reason"]) for r in rows.fetchall()]
    assert recorded == [
        ("account-discovered", f"no account '999999999999' in organization '{ORG}'"),
        (
            "account-discovered",
            "missing field 'sync_id'; account_ids must be a list of 1 to 50 account ids",
        ),
    ]
    assert stub.dead_letters == []


def test_every_stage_message_gets_one_log_line_with_its_outcome_and_counts(
    stub: StubBroker,
) -> None:
    page = TagsHarvested(org_id=ORG, sync_id=SYNC, account_ids=("123456789012",))
    with capture_logs() as logs:
        send(stub, page.queue, page.actor, page.payload())
        send(stub, page.queue, page.actor, page.payload())  # a duplicate: skipped

    stage_lines = [x for x in logs if x.get("event") == "stage"]
    assert [(x["stage"], x["outcome"]) for x in stage_lines] == [
        ("reconcile", "done"),
        ("reconcile", "skipped"),
    ]
    assert stage_lines[0]["account_ids"] == ["123456789012"]
    assert stage_lines[0]["changes"] == 4  # env, and the three badges discovery owns
