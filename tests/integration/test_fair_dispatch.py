"""Fair dispatch on real PostgreSQL and RabbitMQ: the outbox releases each organization's share
of pages, so a small organization's pages interleave with a large one's instead of waiting
behind all of them in arrival order."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pika
import psycopg

from orgsync.pipelines.events import AccountsDiscovered
from orgsync.pipelines.outbox import emit
from orgsync.services.adapters import db, relay
from orgsync.services.adapters.broker import make_broker

Conn = psycopg.Connection[dict[str, Any]]
LARGE, SMALL = "o-large00001", "o-small00001"
QUEUE = AccountsDiscovered.queue


def pages(org_id: str, first: int, count: int) -> list[AccountsDiscovered]:
    sync_id = str(uuid.uuid4())
    return [
        AccountsDiscovered(org_id=org_id, sync_id=sync_id, account_ids=(f"{first + n:012d}",))
        for n in range(count)
    ]


def next_body(channel: Any, deadline: float = 10.0) -> dict[str, Any]:
    """The next message on the queue, taken (polled: a publish confirm may still be on its way)."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        method, _, body = channel.basic_get(QUEUE, auto_ack=True)
        if method is not None:
            return dict(json.loads(body))
        time.sleep(0.02)
    raise AssertionError(f"nothing arrived on {QUEUE} within {deadline} s")


def held(conn: Conn) -> dict[str, int]:
    rows = conn.execute(
        "SELECT org_id, count(*) AS n FROM outbox WHERE held GROUP BY org_id"
    ).fetchall()
    conn.commit()
    return {r["org_id"]: r["n"] for r in rows}


def test_a_small_organizations_pages_interleave_with_a_large_ones_by_share_not_arrival(
    conn: Conn, database_url: str, own_broker_url: str
) -> None:
    ids = emit(conn, pages(LARGE, 0, 12)) + emit(conn, pages(SMALL, 900, 3))
    conn.commit()
    broker = make_broker(own_broker_url)
    pool = db.open_pool(database_url, max_size=2)
    connection = pika.BlockingConnection(pika.URLParameters(own_broker_url))
    try:
        assert relay.relay(pool, broker, ids, cap=2) == 4
        assert held(conn) == {LARGE: 10, SMALL: 1}
        channel = connection.channel()
        order = []
        for _ in range(15):  # each page taken is finished: its organization's next one goes
            body = next_body(channel)
            order.append(body["args"][0]["org_id"])
            relay.finish(pool, broker, body["message_id"], cap=2)
    finally:
        connection.close()
        pool.close()
        broker.close()
    # in arrival order the small organization's pages would have come 13th to 15th; by share
    # they come among the first 7 (the relay publishes a batch concurrently: its order may vary)
    small = [n for n, org in enumerate(order) if org == SMALL]
    assert len(small) == 3 and max(small) <= 6, order
    assert conn.execute("SELECT count(*) AS n FROM outbox").fetchone() == {"n": 0}


def test_a_page_finished_by_no_one_does_not_hold_its_share_past_the_expiry(
    conn: Conn, database_url: str, own_broker_url: str
) -> None:
    ids = emit(conn, pages(LARGE, 0, 3))
    conn.commit()
    broker = make_broker(own_broker_url)
    pool = db.open_pool(database_url, max_size=2)
    try:
        assert relay.relay(pool, broker, ids, cap=1) == 1
        assert relay.sweep(pool, broker, cap=1) == 0  # its share is full
        conn.execute(
            "UPDATE outbox SET sent_at = now() - make_interval(secs => %s)"
            " WHERE sent_at IS NOT NULL",
            (relay.IN_FLIGHT_EXPIRY_S + 1,),
        )
        conn.commit()
        assert relay.sweep(pool, broker, cap=1) == 1  # the lost one is forgotten, the next goes
    finally:
        pool.close()
        broker.close()
    assert held(conn) == {LARGE: 1}


def test_a_page_finished_before_its_relay_committed_is_still_finished(
    conn: Conn, database_url: str, own_broker_url: str
) -> None:
    """A fast consumer can finish a message while the relay that published it has not yet
    committed its `sent` mark: the finish waits for that commit instead of missing the row."""
    [message_id] = emit(conn, pages(LARGE, 0, 1))
    conn.execute("UPDATE outbox SET held = false")
    conn.commit()
    broker = make_broker(own_broker_url)
    pool = db.open_pool(database_url, max_size=2)
    try:
        with psycopg.connect(database_url) as relaying:  # the relay, between publish and commit
            relaying.execute(
                "SELECT id FROM outbox WHERE message_id = %s FOR UPDATE", (message_id,)
            )
            finishing = threading.Thread(target=relay.finish, args=(pool, broker, message_id, 8))
            finishing.start()
            finishing.join(0.5)
            assert finishing.is_alive(), "the finish must wait for the relay's commit"
            relaying.execute(
                "UPDATE outbox SET sent_at = now() WHERE message_id = %s", (message_id,)
            )
        finishing.join(10)
    finally:
        pool.close()
        broker.close()
    assert conn.execute("SELECT count(*) AS n FROM outbox").fetchone() == {"n": 0}
