"""Validation of pages of accounts on real PostgreSQL, and dead letters on real RabbitMQ.

Every test runs the stage function `validate`, as the actor does, with an STS that answers
each member role from a script."""

from __future__ import annotations

import inspect
import json
import uuid
from dataclasses import replace
from typing import Any

import dramatiq
import pika
import psycopg
import pytest
from botocore.exceptions import ClientError

from orgsync.pipelines import validation
from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.events import AccountsDiscovered, AccountsValidated
from orgsync.pipelines.registration import store_organization
from orgsync.pipelines.request_rules import Credentials, Filters
from orgsync.pipelines.stage import Outcome
from orgsync.services.adapters import dead_letters
from orgsync.services.adapters.broker import make_broker
from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings
from orgsync.services.use_cases import redrive
from tests.support.stages import outbox_events, stage_deps
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

Conn = psycopg.Connection[dict[str, Any]]
ORG, OTHER_ORG = "o-validation1", "o-otherorg01"
SYNC = str(uuid.uuid4())
QUEUE = AccountsDiscovered.queue
CREDENTIALS = Credentials(
    org_role_arn="arn:aws:iam::123456789012:role/OrgSyncReadOnly",
    org_session_name="orgsync-test",
    org_session_duration=3600,
    member_role_name="OrgSyncMember",
    member_session_name="orgsync-member",
    member_session_duration=900,
)


def acct(n: int) -> str:
    return f"{n:012d}"


def aws_error(code: str, status: int = 400, message: str = "nope") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "AssumeRole")


DENIED = aws_error("AccessDenied", 403, "not authorized")
THROTTLED = aws_error("Throttling", 400, "Rate exceeded")
UNAVAILABLE = aws_error("ServiceUnavailable", 503, "Service Unavailable")


class ScriptedSts:
    """AssumeRole answers per account: the next scripted error for it, else success."""

    def __init__(self, **errors: list[Exception]) -> None:
        self.errors = {acct(int(k.removeprefix("a"))): list(v) for k, v in errors.items()}
        self.calls: list[str] = []

    def assume_role(self, **params: Any) -> dict[str, Any]:
        account_id = params["RoleArn"].split(":")[4]
        self.calls.append(account_id)
        script = self.errors.get(account_id) or []
        if script:
            raise script.pop(0)
        return {"Credentials": {}}


def add_account(conn: Conn, n: int, org_id: str = ORG, stage: str = "discovered") -> str:
    conn.execute(
        "INSERT INTO accounts (account_id, org_id, name, sync_id, stage)"
        " VALUES (%s, %s, %s, %s, %s)",
        (acct(n), org_id, f"acct-{n}", SYNC, stage),
    )
    return acct(n)


def page(*numbers: int, org_id: str = ORG, **more: Any) -> AccountsDiscovered:
    ids = tuple(acct(n) for n in numbers)
    return AccountsDiscovered(org_id=org_id, sync_id=SYNC, account_ids=ids, **more)


def account(conn: Conn, n: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT a.status, a.status_reason, a.stage, f.code, f.message, f.attempts"
        " FROM accounts a LEFT JOIN failures f USING (account_id) WHERE account_id = %s",
        (acct(n),),
    ).fetchone()
    assert row is not None
    return row


@pytest.fixture
def org(conn: Conn, keyring: Keyring) -> Conn:
    for org_id in (ORG, OTHER_ORG):
        store_organization(conn, keyring, org_id, org_id, CREDENTIALS, Filters())
        conn.execute(
            "INSERT INTO syncs (sync_id, org_id, trigger) VALUES (%s, %s, 'test')"
            " ON CONFLICT DO NOTHING",
            (SYNC if org_id == ORG else str(uuid.uuid4()), org_id),
        )
    conn.commit()
    return conn


def run(conn: Conn, keyring: Keyring, sts: ScriptedSts, event: AccountsDiscovered) -> Any:
    conn.execute("DELETE FROM outbox")
    conn.commit()
    result = validation.validate(stage_deps(conn, keyring, sts=sts), event)
    conn.commit()
    return result


def test_a_page_is_validated_in_one_go_and_goes_on_as_one_page(org: Conn, keyring: Keyring) -> None:
    for n in (1, 2, 3):
        add_account(org, n)
    org.commit()
    sts = ScriptedSts(a2=[DENIED])

    result = run(org, keyring, sts, page(1, 2, 3))

    assert result.outcome is Outcome.DONE
    assert (result.counts["ok"], result.counts["failed"], result.counts["again"]) == (2, 1, 0)
    assert result.error_code == "AccessDenied"
    assert sorted(sts.calls) == [acct(1), acct(2), acct(3)]
    assert outbox_events(org) == [
        AccountsValidated(org_id=ORG, sync_id=SYNC, account_ids=(acct(1), acct(2), acct(3)))
    ]
    assert (account(org, 1)["status"], account(org, 2)["status"]) == ("ok", "assume_role_failed")
    assert account(org, 2)["status_reason"] == "AccessDenied: not authorized"


def test_a_failure_is_recorded_once_per_delivery_and_cleared_by_a_later_success(
    org: Conn, keyring: Keyring
) -> None:
    add_account(org, 11)
    org.commit()
    run(org, keyring, ScriptedSts(a11=[DENIED]), page(11))
    again = run(org, keyring, ScriptedSts(a11=[DENIED]), page(11))  # a duplicate delivery
    assert again.outcome is Outcome.SKIPPED and outbox_events(org) == []
    row = account(org, 11)
    assert (row["status"], row["stage"], row["code"], row["attempts"]) == (
        "assume_role_failed",
        "validated",
        "AccessDenied",
        1,
    )

    [redriven] = validation.redrive(org, "retry-1", ORG, None, None)
    org.commit()
    run(org, keyring, ScriptedSts(a11=[DENIED]), redriven)
    assert account(org, 11)["attempts"] == 2  # attempts add up across re-drives

    [last] = validation.redrive(org, "retry-2", ORG, None, None)
    org.commit()
    run(org, keyring, ScriptedSts(), last)
    row = account(org, 11)
    assert (row["status"], row["status_reason"], row["code"]) == ("ok", None, None)


def test_throttled_accounts_go_round_again_as_a_smaller_page_after_a_delay(
    org: Conn, keyring: Keyring
) -> None:
    for n in (21, 22, 23):
        add_account(org, n)
    org.commit()

    result = run(org, keyring, ScriptedSts(a22=[THROTTLED]), page(21, 22, 23))

    assert result.counts["again"] == 1
    validated, retry = outbox_events(org)
    assert validated == AccountsValidated(
        org_id=ORG, sync_id=SYNC, account_ids=(acct(21), acct(23))
    )
    assert retry == page(22, attempt=2)
    delay = org.execute(
        "SELECT extract(epoch FROM deliver_at - created_at) AS s FROM outbox WHERE queue_name = %s",
        (QUEUE,),
    ).fetchone()
    assert delay is not None and 0 <= delay["s"] <= validation.RETRY_BASE_SECONDS
    assert account(org, 22)["stage"] == "discovered"  # still waiting, nothing recorded

    run(org, keyring, ScriptedSts(), retry)
    assert account(org, 22)["status"] == "ok"


def test_a_denial_met_on_a_page_that_went_round_again_counts_one_failed_attempt(
    org: Conn, keyring: Keyring
) -> None:
    add_account(org, 24)
    org.commit()

    run(org, keyring, ScriptedSts(a24=[DENIED]), page(24, attempt=3))  # deferred twice before

    assert account(org, 24)["attempts"] == 1


def test_a_storm_that_outlasts_the_attempts_is_stored_as_gave_up(
    org: Conn, keyring: Keyring
) -> None:
    add_account(org, 31)
    org.commit()
    last = page(31, attempt=validation.MAX_ATTEMPTS)

    run(org, keyring, ScriptedSts(a31=[UNAVAILABLE]), last)

    row = account(org, 31)
    reason = (
        f"gave up after {validation.MAX_ATTEMPTS} attempts: ServiceUnavailable: Service Unavailable"
    )
    assert row["status_reason"] == reason
    assert (row["code"], row["message"], row["attempts"]) == (
        "ServiceUnavailable",
        reason,
        validation.MAX_ATTEMPTS,
    )


def test_throttling_never_fails_an_account_however_many_attempts_it_took(
    org: Conn, keyring: Keyring
) -> None:
    add_account(org, 32)
    org.commit()
    late = page(32, attempt=validation.MAX_ATTEMPTS + 5)

    result = run(org, keyring, ScriptedSts(a32=[THROTTLED]), late)

    assert result.counts["again"] == 1 and result.counts["failed"] == 0
    assert account(org, 32)["stage"] == "discovered"
    [retry] = [e for e in outbox_events(org) if e.account_ids == (acct(32),)]
    assert retry.attempt == validation.MAX_ATTEMPTS + 6


def test_a_page_naming_an_account_of_another_organization_is_rejected_whole(
    org: Conn, keyring: Keyring
) -> None:
    add_account(org, 41)
    add_account(org, 42, org_id=OTHER_ORG)
    org.commit()
    sts = ScriptedSts()

    result = run(org, keyring, sts, page(41, 42))

    assert result.outcome is Outcome.REJECTED
    assert result.rejections == [f"no account '{acct(42)}' in organization '{ORG}'"]
    assert sts.calls == [] and account(org, 41)["stage"] == "discovered"


def test_redrive_selects_by_org_account_and_code_with_new_message_ids(
    org: Conn, keyring: Keyring
) -> None:
    for n in (301, 302, 304):
        add_account(org, n)
    org.commit()
    run(org, keyring, ScriptedSts(a301=[DENIED], a302=[DENIED]), page(301, 302))
    run(org, keyring, ScriptedSts(a304=[UNAVAILABLE]), page(304, attempt=validation.MAX_ATTEMPTS))

    [one] = validation.redrive(org, "r1", None, acct(302), None)
    assert one.account_ids == (acct(302),)
    [unavailable] = validation.redrive(org, "r2", ORG, None, "ServiceUnavailable")
    assert unavailable.account_ids == (acct(304),)
    [rest] = validation.redrive(org, "r3", None, None, None)
    assert rest.account_ids == (acct(301),)  # 302 and 304 are already on their way
    assert rest.message_id.endswith(":r3:1")
    assert page(301).message_id != rest.message_id
    assert all(account(org, n)["stage"] == "discovered" for n in (301, 302, 304))


def dead_letter(broker_url: str, *events: AccountsDiscovered) -> None:
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
    before = dead_letters.dead_letter_count(broker_url)
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    channel.confirm_delivery()  # stored (a quorum queue's Raft log) before it is fetched
    channel.basic_publish("", f"{QUEUE}", b"{not json", pika.BasicProperties(delivery_mode=2))
    for _ in range(len(events) + 1):
        method, _, _ = channel.basic_get(QUEUE)
        channel.basic_nack(method.delivery_tag, requeue=False)
    connection.close()
    dead = before + len(events) + 1  # a quorum queue dead-letters asynchronously
    wait_until(lambda: dead_letters.dead_letter_count(broker_url) >= dead, 10, "dead letters")


def queued(broker_url: str, queue: str) -> list[dict[str, Any]]:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    bodies = []
    while (got := channel.basic_get(queue))[0] is not None:
        bodies.append(got[2])
    connection.close()  # unacked: they all stay where they were
    return [json.loads(b) if b.startswith(b'{"') else {"raw": b} for b in bodies]


def test_retry_failed_re_drives_dead_letters_and_failures_and_reports_what_it_left(
    org: Conn, keyring: Keyring, settings: Settings, own_broker_url: str
) -> None:
    settings = replace(settings, broker_url=own_broker_url)
    with House(settings) as house:
        add_account(org, 401)  # dead-lettered while its validation was due
        add_account(org, 402, stage="reconciled")  # dead-lettered, then a later message won
        add_account(org, 403)
        org.commit()
        run(org, keyring, ScriptedSts(a403=[DENIED]), page(403))
        dead_letter(own_broker_url, page(401), page(402))
        assert dead_letters.dead_letter_count(settings.broker_url) == 3

        dry = redrive.retry_failed(house, ORG, dry_run=True)
        assert (dry.queued, dry.failed, dry.dead_lettered, dry.stale, dry.left) == (2, 1, 1, 1, 1)
        assert dead_letters.dead_letter_count(settings.broker_url) == 3
        assert account(org, 403)["stage"] == "validated"

        done = redrive.retry_failed(house, ORG)
        counts = (done.queued, done.failed, done.dead_lettered, done.stale, done.left)
        assert counts == (2, 1, 1, 1, 1)
        described = "queued 2 account(s) for validation (1 from account-discovered.XQ)"
        assert described in done.describe()
        assert [m["raw"] for m in queued(own_broker_url, f"{QUEUE}.XQ")] == [b"{not json"]
        republished = queued(own_broker_url, QUEUE)
        assert sorted(a for m in republished for a in m["args"][0]["account_ids"]) == [
            acct(401),
            acct(403),
        ]
        assert all(m["options"] == {} for m in republished)  # a fresh retry budget
        tokens = {m["args"][0]["redrive"] for m in republished}
        assert len(tokens) == 1 and tokens != {"0"}
        assert all(m["message_id"].endswith(f":{tokens.pop()}:1") for m in republished[:1])


def test_a_dead_letter_nested_too_deeply_is_left_in_place_and_the_rest_are_read_one_by_one(
    org: Conn, settings: Settings, own_broker_url: str
) -> None:
    settings = replace(settings, broker_url=own_broker_url)
    add_account(org, 501)
    org.commit()
    dead_letter(own_broker_url, page(501))  # and one "{not json"
    deep = b'{"args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    connection = pika.BlockingConnection(pika.URLParameters(own_broker_url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish("", QUEUE, deep, pika.BasicProperties(delivery_mode=2))
    method, _, _ = channel.basic_get(QUEUE)
    channel.basic_nack(method.delivery_tag, requeue=False)
    connection.close()
    wait_until(lambda: dead_letters.dead_letter_count(own_broker_url) == 3, 10, "dead letters")

    with dead_letters.DeadLetters(own_broker_url) as letters:
        assert inspect.isgenerator(letters.take())  # never the whole queue in memory at once
    with House(settings) as house:
        done = redrive.retry_failed(house, ORG)

    assert (done.dead_lettered, done.left) == (1, 2)
    assert dead_letters.dead_letter_count(own_broker_url) == 2  # the unreadable ones stay
