"""Validation outcomes and re-drives on real PostgreSQL, and dead letters on real RabbitMQ."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

import dramatiq
import pika
import psycopg
import pytest
from botocore.exceptions import ClientError

from pipelines import validation
from pipelines.aws_errors import classify
from pipelines.events import AccountDiscovered, AccountValidated
from pipelines.validation import Validation, ValidationStatus
from services import client
from services.broker import make_broker
from services.settings import Settings

pytestmark = pytest.mark.integration

Conn = psycopg.Connection[dict[str, Any]]
ORG, OTHER_ORG = "o-validation", "o-other"
SYNC = str(uuid.uuid4())
DENIED = Validation(ValidationStatus.ASSUME_ROLE_FAILED, "AccessDenied", "not authorized")
QUEUE = AccountDiscovered.queue


def add_org(conn: Conn, org_id: str) -> None:
    conn.execute(
        "INSERT INTO organizations (org_id, nickname, management_account_id, partition,"
        " credentials_key_id, credentials) VALUES (%s, %s, '123456789012', 'aws', 'k', 'x')",
        (org_id, org_id),
    )


def add_account(conn: Conn, account_id: str, org_id: str = ORG, stage: str = "discovered") -> None:
    conn.execute(
        "INSERT INTO accounts (account_id, org_id, name, sync_id, stage)"
        " VALUES (%s, %s, %s, %s, %s)",
        (account_id, org_id, f"acct-{account_id}", SYNC, stage),
    )


def discovered(account_id: str, org_id: str = ORG) -> AccountDiscovered:
    return AccountDiscovered(org_id=org_id, sync_id=SYNC, account_id=account_id)


def account(conn: Conn, account_id: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT a.status, a.status_reason, a.stage, f.code, f.message, f.attempts"
        " FROM accounts a LEFT JOIN failures f USING (account_id) WHERE account_id = %s",
        (account_id,),
    ).fetchone()
    assert row is not None
    return row


@pytest.fixture
def org(conn: Conn) -> Conn:
    add_org(conn, ORG)
    add_org(conn, OTHER_ORG)
    conn.commit()
    return conn


def test_a_failure_is_recorded_once_per_delivery_and_cleared_by_a_later_success(org: Conn) -> None:
    add_account(org, "111")
    event = discovered("111")

    assert validation.record(org, event, DENIED, 1) == [
        AccountValidated(org_id=ORG, sync_id=SYNC, account_id="111", status="assume_role_failed")
    ]
    assert validation.record(org, event, DENIED, 1) == []  # a duplicate delivery
    row = account(org, "111")
    assert (row["status"], row["stage"], row["code"], row["attempts"]) == (
        "assume_role_failed",
        "validated",
        "AccessDenied",
        1,
    )
    assert row["status_reason"] == "AccessDenied: not authorized"

    [again] = validation.redrive(org, "retry-1", ORG, None, None)
    assert validation.record(org, again, DENIED, 1)
    assert account(org, "111")["attempts"] == 2  # attempts add up across re-drives

    [last] = validation.redrive(org, "retry-2", ORG, None, None)
    assert validation.record(org, last, Validation(ValidationStatus.OK), 1)
    row = account(org, "111")
    assert (row["status"], row["status_reason"], row["code"]) == ("ok", None, None)


def test_a_storm_that_outlasts_the_retries_is_stored_as_gave_up(org: Conn) -> None:
    add_account(org, "222")
    throttled = ClientError(
        {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "AssumeRole"
    )
    error = validation.TransientAwsError(classify(throttled))
    validation.record(org, discovered("222"), validation.gave_up(error, 4), 4)
    row = account(org, "222")
    assert row["status_reason"] == "gave up after 4 attempts: Throttling: Rate exceeded"
    assert (row["code"], row["message"], row["attempts"]) == (
        "Throttling",
        "gave up after 4 attempts: Throttling: Rate exceeded",
        4,
    )


def test_redrive_selects_by_org_account_and_code_with_new_message_ids(org: Conn) -> None:
    for account_id, org_id in (("301", ORG), ("302", ORG), ("303", OTHER_ORG)):
        add_account(org, account_id, org_id)
        validation.record(org, discovered(account_id, org_id), DENIED, 1)
    add_account(org, "304")
    throttled = replace(DENIED, code="Throttling", gave_up_after=4)
    validation.record(org, discovered("304"), throttled, 4)

    assert [e.account_id for e in validation.redrive(org, "r1", None, "302", None)] == ["302"]
    assert [e.account_id for e in validation.redrive(org, "r2", ORG, None, "Throttling")] == ["304"]
    rest = validation.redrive(org, "r3", None, None, None)
    assert [e.account_id for e in rest] == ["301", "303"]  # 302 and 304 are already on their way
    assert {e.message_id for e in rest} == {
        f"account-discovered:{SYNC}:301:r3",
        f"account-discovered:{SYNC}:303:r3",
    }
    assert discovered("301").message_id not in {e.message_id for e in rest}
    assert all(account(org, a)["stage"] == "discovered" for a in ("301", "302", "303", "304"))


def dead_letter(broker_url: str, *events: AccountDiscovered) -> None:
    """Dead-letter messages the way dramatiq does: delivered from the queue, then nacked."""
    broker = make_broker(broker_url)
    broker.declare_queue(QUEUE, ensure=True)  # the queue trio, with dramatiq's arguments
    for event in events:
        broker.enqueue(
            dramatiq.Message(
                queue_name=QUEUE,
                actor_name=event.actor,
                args=(event.payload(),),
                kwargs={},
                options={"retries": 3},
                message_id=event.message_id,
            )
        )
    broker.close()
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    channel.basic_publish("", f"{QUEUE}", b"{not json", pika.BasicProperties(delivery_mode=2))
    for _ in range(len(events) + 1):
        method, _, _ = channel.basic_get(QUEUE)
        channel.basic_nack(method.delivery_tag, requeue=False)
    connection.close()


def queued(broker_url: str, queue: str) -> list[dict[str, Any]]:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    bodies = []
    while (got := channel.basic_get(queue))[0] is not None:
        bodies.append(got[2])
    connection.close()  # unacked: they all stay where they were
    return [json.loads(b) if b.startswith(b'{"') else {"raw": b} for b in bodies]


def test_retry_failed_re_drives_dead_letters_and_failures_and_reports_what_it_left(
    org: Conn, settings: Settings, own_broker_url: str
) -> None:
    settings = replace(settings, broker_url=own_broker_url)
    add_account(org, "401")  # dead-lettered while its validation was due
    add_account(org, "402", stage="reconciled")  # dead-lettered, then a later message won
    add_account(org, "403")
    validation.record(org, discovered("403"), DENIED, 1)
    org.commit()
    dead_letter(own_broker_url, discovered("401"), discovered("402"))
    assert client.dead_letter_count(settings) == 3

    dry = client.retry_failed(settings, ORG, dry_run=True)
    assert (dry.queued, dry.failed, dry.dead_lettered, dry.stale, dry.left) == (2, 1, 1, 1, 1)
    assert client.dead_letter_count(settings) == 3
    assert account(org, "403")["stage"] == "validated"

    done = client.retry_failed(settings, ORG)
    assert (done.queued, done.failed, done.dead_lettered, done.stale, done.left) == (2, 1, 1, 1, 1)
    assert "queued 2 account(s) for validation (1 from account-discovered.XQ)" in done.describe()
    assert [m["raw"] for m in queued(own_broker_url, f"{QUEUE}.XQ")] == [b"{not json"]
    republished = queued(own_broker_url, QUEUE)
    assert sorted(m["args"][0]["account_id"] for m in republished) == ["401", "403"]
    assert all(m["options"] == {} for m in republished)  # a fresh retry budget
    assert all(m["message_id"].endswith(m["args"][0]["attempt"]) for m in republished)
    assert {m["args"][0]["attempt"] for m in republished} != {"0"}
