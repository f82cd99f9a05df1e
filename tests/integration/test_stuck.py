"""The stuck-sync sweeper on real PostgreSQL (and RabbitMQ for the re-drive it publishes)."""

from __future__ import annotations

import uuid
from typing import Any

import pika
import psycopg
import pytest

from orgsync.pipelines import stuck
from orgsync.pipelines.events import (
    AccountsDiscovered,
    AccountsValidated,
    OrgRegistered,
    TagsHarvested,
)
from orgsync.pipelines.outbox import emit
from orgsync.services.adapters import db, relay
from orgsync.services.adapters.broker import make_broker
from orgsync.services.settings import Settings, SettingsError

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[dict[str, Any]]
BOUND = 60.0
ORG = "o-stuck00001"


def add_org(conn: Conn, org_id: str = ORG) -> None:
    conn.execute(
        "INSERT INTO organizations (org_id, nickname, management_account_id, partition,"
        " credentials_key_id, credentials) VALUES (%s, %s, '123456789012', 'aws', 'k', '\\x00')",
        (org_id, org_id),
    )


def add_sync(conn: Conn, age: float, walked: bool = True, org_id: str = ORG) -> str:
    sync_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO syncs (sync_id, org_id, trigger, started_at, walked_at) VALUES"
        " (%s, %s, 'test', now() - make_interval(secs => %s),"
        "  CASE WHEN %s THEN now() - make_interval(secs => %s) END)",
        (sync_id, org_id, age, walked, age),
    )
    return sync_id


def add_account(
    conn: Conn, sync_id: str, account_id: str, stage: str, age: float, status: str = "pending"
) -> None:
    conn.execute(
        "INSERT INTO accounts (account_id, org_id, name, status, sync_id, stage, stage_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, now() - make_interval(secs => %s))",
        (account_id, ORG, f"acct-{account_id}", status, sync_id, stage, age),
    )


@pytest.fixture
def org(conn: Conn) -> Conn:
    add_org(conn)
    conn.commit()
    return conn


def test_a_stalled_sync_gets_the_page_each_waiting_account_waits_for(org: Conn) -> None:
    sync = add_sync(org, age=600)
    add_account(org, sync, "111111111111", "discovered", 300)
    add_account(org, sync, "222222222222", "validated", 300, status="ok")
    add_account(org, sync, "333333333333", "harvested", 300, status="ok")
    add_account(org, sync, "444444444444", "reconciled", 300, status="ok")

    redrives = stuck.sweep(org, BOUND)

    assert redrives is not None and len(redrives) == 1
    ids = {"org_id": ORG, "sync_id": sync}
    assert redrives[0].events == [
        AccountsDiscovered(**ids, account_ids=("111111111111",)),
        TagsHarvested(**ids, account_ids=("333333333333",)),
        AccountsValidated(**ids, account_ids=("222222222222",)),
    ]
    row = org.execute("SELECT redrives FROM syncs WHERE sync_id = %s", (sync,)).fetchone()
    assert row == {"redrives": 1}


def test_a_resent_event_has_the_stage_s_own_message_id(org: Conn) -> None:
    sync = add_sync(org, age=600)
    add_account(org, sync, "111111111111", "discovered", 300)
    redrives = stuck.sweep(org, BOUND)
    assert redrives is not None
    again = AccountsDiscovered(org_id=ORG, sync_id=sync, account_ids=("111111111111",))
    assert redrives[0].events[0].message_id == again.message_id


def test_a_re_driven_sync_waits_one_bound_before_the_next_re_drive(org: Conn) -> None:
    sync = add_sync(org, age=600)
    add_account(org, sync, "111111111111", "discovered", 300)
    assert stuck.sweep(org, BOUND)
    org.commit()
    assert stuck.sweep(org, BOUND) == []


def test_a_sync_still_moving_is_left_alone_even_if_one_account_waits_long(org: Conn) -> None:
    sync = add_sync(org, age=600)
    add_account(org, sync, "111111111111", "discovered", 300)
    add_account(org, sync, "222222222222", "reconciled", 5)  # the sync moved 5 s ago
    assert stuck.sweep(org, BOUND) == []


def test_only_the_organization_s_current_sync_is_re_driven(org: Conn) -> None:
    old = add_sync(org, age=900)
    add_account(org, old, "111111111111", "discovered", 800)
    add_sync(org, age=600)  # superseded `old`; nothing of it waits
    assert stuck.sweep(org, BOUND) == []


def test_a_sync_with_an_event_in_the_outbox_is_not_stalled(org: Conn) -> None:
    sync = add_sync(org, age=600)
    add_account(org, sync, "111111111111", "discovered", 300)
    emit(org, [AccountsDiscovered(org_id=ORG, sync_id=sync, account_ids=("111111111111",))])
    assert stuck.sweep(org, BOUND) == []


def test_a_walk_that_never_finished_is_started_again(org: Conn) -> None:
    sync = add_sync(org, age=600, walked=False)
    add_account(org, sync, "111111111111", "discovered", 300)
    redrives = stuck.sweep(org, BOUND)
    assert redrives is not None
    assert redrives[0].walk
    assert redrives[0].events[0] == OrgRegistered(org_id=ORG, sync_id=sync)


def test_a_finished_or_young_sync_is_not_stalled(org: Conn) -> None:
    done = add_sync(org, age=600)
    add_account(org, done, "111111111111", "reconciled", 300)
    add_org(org, "o-young000001")
    add_sync(org, age=5, walked=False, org_id="o-young000001")
    assert stuck.sweep(org, BOUND) == []


def test_only_one_process_sweeps_at_a_time(org: Conn, database_url: str) -> None:
    sync = add_sync(org, age=600)
    add_account(org, sync, "111111111111", "discovered", 300)
    org.commit()
    with db.connect(database_url) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s)", (stuck.LOCK,))
        assert stuck.sweep(org, BOUND) is None
    org.rollback()
    assert stuck.sweep(org, BOUND)


def test_the_worker_sweeper_publishes_the_re_drive_through_the_outbox(
    org: Conn, database_url: str, broker_url: str
) -> None:
    sync = add_sync(org, age=600)
    add_account(org, sync, "111111111111", "validated", 300, status="ok")
    org.commit()
    broker = make_broker(broker_url)
    pool = db.open_pool(database_url, max_size=2)
    try:
        assert relay.redrive_stuck(pool, broker, BOUND, cap=8) == 1
        assert relay.redrive_stuck(pool, broker, BOUND, cap=8) == 0
    finally:
        pool.close()
        broker.close()
    # published, and kept until its consumer finishes it
    assert org.execute("SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL").fetchone() == {
        "n": 0
    }
    again = AccountsValidated(org_id=ORG, sync_id=sync, account_ids=("111111111111",))
    assert again.message_id in queued(broker_url, AccountsValidated.queue)


def queued(broker_url: str, queue: str) -> str:
    """The bodies waiting in `queue`, read without taking them (closing requeues them)."""
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        bodies = []
        while (got := channel.basic_get(queue, auto_ack=False))[0] is not None:
            bodies.append(got[2].decode())
    finally:
        connection.close()
    return "\n".join(bodies)


def test_the_bound_comes_from_orgsync_stuck_after() -> None:
    assert Settings.from_env({}).stuck_after == 900
    assert Settings.from_env({"ORGSYNC_STUCK_AFTER": "90s"}).stuck_after == 90
    with pytest.raises(SettingsError, match="ORGSYNC_STUCK_AFTER"):
        Settings.from_env({"ORGSYNC_STUCK_AFTER": "soon"})


def test_many_waiting_accounts_are_re_driven_a_page_at_a_time(org: Conn) -> None:
    sync = add_sync(org, age=600)
    for n in range(120):
        add_account(org, sync, f"{n:012d}", "discovered", 300)
    redrives = stuck.sweep(org, BOUND)
    assert redrives is not None
    assert [len(e.account_ids) for e in redrives[0].events] == [50, 50, 20]  # type: ignore[attr-defined]
