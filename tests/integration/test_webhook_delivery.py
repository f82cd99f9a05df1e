"""Webhook deliveries on real PostgreSQL and RabbitMQ to real HTTP receivers in this process:
retries with the same id and body, failure after the retry window and redelivery, no redirect
followed, one slow receiver never delaying another, and the exchange carrying the same events."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from orgsync.pipelines.credentials import Keyring, generate_key
from orgsync.pipelines.sql import load
from orgsync.pipelines.webhooks import headers as signed_headers
from orgsync.pipelines.webhooks import parse_secret
from orgsync.services.adapters import db, keys
from orgsync.services.adapters.change_exchange import ExchangePublisher
from orgsync.services.adapters.webhook_http import Poster
from orgsync.services.errors import UserError
from orgsync.services.processes.outbound import Outbound, deliver_batch
from orgsync.services.settings import Settings
from orgsync.services.testing.webhook_receiver import Receiver, receiving
from orgsync.services.use_cases import webhooks
from tests.support.amqp import bind_to_changes, drain
from tests.support.waiting import wait_until

Conn = psycopg.Connection[dict[str, Any]]
SQL = load("orgsync.services.adapters")
ADDED = ["orgsync.account.added"]


@pytest.fixture
def pool(database_url: str) -> Iterator[db.Pool]:
    pool = db.open_pool(database_url, max_size=4)
    yield pool
    pool.close()


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Retries a tenth of a second apart, tries of at most a second."""
    return replace(settings, webhook_first_retry=0.1, webhook_timeout=1.0)


def add_accounts(conn: Conn, *ids: str) -> None:
    for account_id in ids:
        conn.execute(
            "INSERT INTO accounts (account_id, name, managed_by_org) VALUES (%s, %s, false)",
            (account_id, f"acct-{account_id}"),
        )
    conn.commit()


def hook(conn: Conn, keyring: Keyring, receiver: Receiver, types: list[str] | None = ADDED) -> str:
    webhook_id = webhooks.add(conn, keyring, receiver.url, receiver.secret, None, types)
    conn.commit()
    return webhook_id


def deliver_until(pool: db.Pool, keyring: Keyring, settings: Settings, done: Any) -> None:
    """Fan out, then try the due deliveries of every webhook, until `done()` holds."""

    def round_() -> Any:
        with pool.connection() as conn:
            conn.execute(SQL["fan_out_events"], {"limit": 1000})
            due = [r["webhook_id"] for r in conn.execute(SQL["webhooks_with_due_deliveries"])]
        for webhook_id in due:
            deliver_batch(pool, keyring, settings, webhook_id)
        return done()

    wait_until(round_, 20, "the deliveries", interval=0.05)


def states(conn: Conn, webhook_id: str) -> list[tuple[str, int]]:
    found = webhooks.deliveries(conn, webhook_id) or []
    conn.commit()
    return [(d["state"], d["attempts"]) for d in found]


def test_a_receiver_answering_500_twice_gets_the_same_id_and_body_three_times_and_nothing_else(
    conn: Conn, pool: db.Pool, keyring: Keyring, fast: Settings
) -> None:
    with receiving(answers=[500, 500]) as receiver:
        webhook_id = hook(conn, keyring, receiver)
        add_accounts(conn, "111111111111")
        deliver_until(pool, keyring, fast, lambda: states(conn, webhook_id) == [("delivered", 3)])
        time.sleep(0.3)  # more rounds would show a fourth request here
        deliver_until(pool, keyring, fast, lambda: True)

        assert len(receiver.received) == 3 and not receiver.rejected
        assert len({r.webhook_id for r in receiver.received}) == 1
        assert len({r.body for r in receiver.received}) == 1
        event = json.loads(receiver.received[0].body)
        assert event["type"] == "orgsync.account.added" and event["subject"] == "111111111111"
        assert receiver.received[0].webhook_id == event["id"]
        assert receiver.received[0].content_type == "application/cloudevents+json"


def test_a_redirect_is_not_followed_and_a_delivery_fails_after_its_window_then_redelivers(
    conn: Conn, pool: db.Pool, keyring: Keyring, fast: Settings
) -> None:
    with receiving(answers=[302] * 1000) as receiver:
        webhook_id = hook(conn, keyring, receiver)
        add_accounts(conn, "111111111111")
        short = replace(fast, webhook_retry_for=1.0)
        deliver_until(pool, keyring, short, lambda: states(conn, webhook_id)[0][0] == "failed")
        [failed] = webhooks.deliveries(conn, webhook_id) or []
        assert failed["last_status"] == 302 and failed["attempts"] >= 2
        first_id = receiver.received[0].webhook_id

        receiver.answers = []
        assert webhooks.redeliver(conn, failed["delivery_id"]) == webhook_id
        conn.commit()
        deliver_until(pool, keyring, short, lambda: states(conn, webhook_id)[0][0] == "delivered")
        assert {r.webhook_id for r in receiver.received} == {first_id}


def test_a_link_local_or_metadata_url_cannot_be_added(conn: Conn, keyring: Keyring) -> None:
    secret = Receiver().secret
    for url in ("http://169.254.169.254/latest/", "http://[fe80::1]:8080/"):
        with pytest.raises(UserError, match="link-local or cloud metadata"):
            webhooks.add(conn, keyring, url, secret)
    with pytest.raises(UserError, match="whsec_"):
        webhooks.add(conn, keyring, "http://127.0.0.1/", "password")
    assert webhooks.listing(conn) == []


def test_one_slow_receiver_never_delays_another(
    conn: Conn, pool: db.Pool, keyring: Keyring, fast: Settings
) -> None:
    with receiving(delay=3.0) as slow, receiving() as quick:
        hook(conn, keyring, slow)
        hook(conn, keyring, quick)
        outbound = Outbound(pool, keyring, replace(fast, webhook_threads=2))
        outbound.start()
        try:
            started = time.monotonic()
            add_accounts(conn, *(f"1111111111{n:02d}" for n in range(20)))
            wait_until(lambda: len(quick.ids()) == 20, 10, "the quick receiver's events")
            assert time.monotonic() - started < 3.0  # never behind one of the slow one's tries
        finally:
            outbound.close()
    assert len(slow.ids()) <= 2


def test_a_consumer_bound_to_the_exchange_sees_the_events_the_webhook_gets(
    conn: Conn, pool: db.Pool, keyring: Keyring, fast: Settings, own_broker_url: str
) -> None:
    queue = f"downstream-{uuid.uuid4().hex[:6]}"
    bind_to_changes(own_broker_url, queue)
    with receiving() as receiver:
        hook(conn, keyring, receiver, types=None)
        add_accounts(conn, "111111111111", "222222222222")
        conn.execute("UPDATE accounts SET status = 'ok' WHERE account_id = '111111111111'")
        conn.commit()
        publisher = ExchangePublisher(own_broker_url)
        try:
            assert publisher.publish_pending(pool) == 3
            assert publisher.publish_pending(pool) == 0
        finally:
            publisher.close()
        deliver_until(pool, keyring, fast, lambda: len(receiver.ids()) == 3)

    published = drain(own_broker_url, queue)
    assert sorted(key for key, _ in published) == [
        "orgsync.account.added",
        "orgsync.account.added",
        "orgsync.account.status_changed",
    ]
    assert {body for _, body in published} == {r.body for r in receiver.received}


def test_events_a_month_old_are_forgotten_with_their_deliveries_unless_one_still_waits(
    conn: Conn, keyring: Keyring, pool: db.Pool
) -> None:
    with receiving() as receiver:
        webhook_id = hook(conn, keyring, receiver)
    add_accounts(conn, "111111111111", "222222222222")
    conn.execute(SQL["fan_out_events"], {"limit": 10})
    conn.execute("UPDATE outbound_events SET at = now() - interval '31 days', published_at = now()")
    conn.execute(
        "UPDATE webhook_deliveries d SET state = 'delivered' FROM outbound_events e"
        " WHERE e.seq = d.event_seq AND e.subject = '111111111111'"
    )
    conn.execute(SQL["forget_old_events"], (30,))
    conn.commit()
    assert [d["subject"] for d in webhooks.deliveries(conn, webhook_id) or []] == ["222222222222"]


def test_a_webhook_secret_is_sealed_and_resealed_by_a_key_rotation(
    conn: Conn, keyring: Keyring
) -> None:
    receiver = Receiver(port=9)  # never started: only its secret is used
    webhook_id = hook(conn, keyring, receiver)
    row = conn.execute("SELECT * FROM webhooks WHERE webhook_id = %s", (webhook_id,)).fetchone()
    assert row is not None and receiver.secret.encode() not in bytes(row["credentials"])

    rotated = keyring.with_new_key(generate_key("rotated"))
    assert keys.reseal_all(rotated, conn) >= 1
    conn.commit()
    row = conn.execute("SELECT * FROM webhooks WHERE webhook_id = %s", (webhook_id,)).fetchone()
    assert row is not None and row["credentials_key_id"] == "rotated"
    assert webhooks.secret_key(rotated, row) == parse_secret(receiver.secret)


def test_a_request_whose_sender_dies_before_its_body_is_neither_received_nor_rejected() -> None:
    """A worker killed between sending the headers and the body (http.client sends them apart)
    delivered nothing: the fault harness's receiver must not count it as a bad signature."""
    with receiving() as receiver:
        with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
            sock.sendall(
                b"POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 200\r\n"
                b'Content-Type: application/cloudevents+json\r\n\r\n{"id":'
            )
        wait_until(lambda: receiver.cut_short, 5.0, "the cut-short request counted")
        body = b'{"id": "e-1"}'
        key = parse_secret(receiver.secret)
        poster = Poster(receiver.url, 5.0)
        answer = poster.post(body, signed_headers(key, "e-1", int(time.time()), body))
        poster.close()
        assert answer.status == 200
        assert receiver.cut_short == 1 and not receiver.rejected
        assert [r.body for r in receiver.received] == [body]
