"""`orgsync exporter` against real PostgreSQL and RabbitMQ: gauges against rows and queues,
and /healthz while a service goes away and comes back (cut by a TCP proxy of the test's own)."""

from __future__ import annotations

import dataclasses
import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import pika
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.webhooks import new_secret
from orgsync.services.settings import Settings
from orgsync.services.use_cases import webhooks
from tests.support.amqp import declare_queues
from tests.support.exporter import Samples, sample, scrape, start
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def healthz(base: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture
def exporter_url(settings: Settings, own_broker_url: str) -> Iterator[str]:
    base, (server, house) = start(dataclasses.replace(settings, broker_url=own_broker_url))
    yield base
    server.shutdown()
    house.close()


def add_org(conn: psycopg.Connection[Any], org_id: str, nickname: str) -> str:
    conn.execute(
        "INSERT INTO organizations (org_id, nickname, management_account_id, partition,"
        " credentials_key_id, credentials) VALUES (%s, %s, '111111111111', 'aws', 'k', '\\x00')",
        (org_id, nickname),
    )
    sync_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO syncs (sync_id, org_id, trigger, started_at, walked_at, complete, counts)"
        " VALUES (%s, %s, 'test', now() - interval '15 minutes', now() - interval '14 minutes',"
        ' true, \'{"seen": 7, "imported": 6, "excluded": {"name_prefix:sandbox-": 1}}\')',
        (sync_id, org_id),
    )
    return sync_id


def add_accounts(
    conn: psycopg.Connection[Any], org_id: str, sync_id: str, status: str, stage: str, n: int
) -> None:
    conn.execute(
        "INSERT INTO accounts (account_id, org_id, name, status, sync_id, stage, stage_at)"
        " SELECT lpad((random() * 1e12)::bigint::text, 12, '0'), %s, 'a' || g, %s, %s, %s,"
        " now() - g * interval '1 minute' FROM generate_series(1, %s) g",
        (org_id, status, sync_id, stage, n),
    )


def test_account_gauges_match_the_rows_in_the_database(
    conn: psycopg.Connection[Any], exporter_url: str
) -> None:
    first = add_org(conn, "o-first", "first")
    second = add_org(conn, "o-second", "second")
    add_accounts(conn, "o-first", first, "ok", "reconciled", 5)
    add_accounts(conn, "o-first", first, "pending", "discovered", 3)  # up to 3 min waiting
    add_accounts(conn, "o-first", first, "assume_role_failed", "validated", 2)
    add_accounts(conn, "o-second", second, "ok", "harvested", 4)
    add_accounts(conn, "o-second", second, "removed", "reconciled", 1)
    conn.execute(
        "INSERT INTO failures (account_id, org_id, stage, code, message)"
        " SELECT account_id, org_id, 'validation', 'AccessDenied', 'no'"
        " FROM accounts WHERE status = 'assume_role_failed'"
    )
    conn.commit()

    samples = scrape(exporter_url)

    rows = conn.execute(
        "SELECT a.org_id, o.nickname, a.status, count(*) AS n FROM accounts a"
        " JOIN organizations o USING (org_id) GROUP BY 1, 2, 3"
    ).fetchall()
    exported = {
        (dict(labels)["org_id"], dict(labels)["org"], dict(labels)["status"]): value
        for (name, labels), value in samples.items()
        if name == "orgsync_accounts"
    }
    assert exported == {(r["org_id"], r["nickname"], r["status"]): r["n"] for r in rows}
    assert sample(samples, "orgsync_pipeline_waiting", stage="validation") == 3
    assert sample(samples, "orgsync_pipeline_waiting", stage="harvest") == 2
    assert sample(samples, "orgsync_pipeline_waiting", stage="reconcile") == 4
    oldest = sample(samples, "orgsync_pipeline_oldest_waiting_seconds", stage="validation")
    assert oldest is not None and 180 <= oldest < 240
    assert sample(samples, "orgsync_pipeline_oldest_waiting_seconds", stage="discovery") == 0
    failed = sample(
        samples, "orgsync_failed_accounts", org_id="o-first", org="first", code="AccessDenied"
    )
    assert failed == 2
    # o-first's last sync still has accounts on their way; it has run 15 minutes so far
    first_org = {"org_id": "o-first", "org": "first"}
    assert sample(samples, "orgsync_sync_last_running", **first_org) == 1
    duration = sample(samples, "orgsync_sync_last_duration_seconds", **first_org)
    assert duration is not None and 900 <= duration < 960
    assert sample(samples, "orgsync_sync_last_complete", **first_org) == 1
    assert sample(samples, "orgsync_sync_last_accounts", **first_org, count="imported") == 6
    assert sample(samples, "orgsync_sync_last_accounts", **first_org, count="excluded") == 1
    assert sample(samples, "orgsync_syncs_total", **first_org) == 1
    assert sample(samples, "orgsync_exporter_up", service="postgresql") == 1


def test_a_finished_sync_reports_its_duration_to_the_last_account_reconciled(
    conn: psycopg.Connection[Any], exporter_url: str
) -> None:
    sync_id = add_org(conn, "o-done", "done")
    add_accounts(conn, "o-done", sync_id, "ok", "reconciled", 3)  # the last 1 min ago
    conn.commit()

    samples = scrape(exporter_url)

    org = {"org_id": "o-done", "org": "done"}
    assert sample(samples, "orgsync_sync_last_running", **org) == 0
    duration = sample(samples, "orgsync_sync_last_duration_seconds", **org)
    assert duration is not None and abs(duration - 14 * 60) < 5


def test_webhook_gauges_count_deliveries_by_state_and_the_oldest_pending_one(
    conn: psycopg.Connection[Any], keyring: Keyring, exporter_url: str
) -> None:
    webhook_id = webhooks.add(conn, keyring, "http://127.0.0.1:9/", new_secret())
    for n in range(4):  # four account.added events
        conn.execute("INSERT INTO accounts (account_id, name) VALUES (%s, 'a')", (f"{n:012d}",))
    conn.execute(
        "INSERT INTO webhook_deliveries (webhook_id, event_seq, state, since)"
        " SELECT %s, seq, (ARRAY['pending', 'pending', 'failed', 'delivered'])[row_number()"
        " OVER (ORDER BY seq)], now() - interval '90 seconds' FROM outbound_events",
        (webhook_id,),
    )
    conn.commit()

    samples = scrape(exporter_url)

    for state, n in (("pending", 2), ("failed", 1), ("delivered", 1)):
        assert (
            sample(samples, "orgsync_webhook_deliveries", webhook_id=webhook_id, state=state) == n
        )
    oldest = sample(samples, "orgsync_webhook_oldest_pending_seconds", webhook_id=webhook_id)
    assert oldest is not None and 85 < oldest < 150
    assert sample(samples, "orgsync_events_unpublished") == 4


def test_queue_gauges_count_ready_delayed_and_dead_lettered_messages(
    own_broker_url: str, exporter_url: str
) -> None:
    declare_queues(own_broker_url)
    connection = pika.BlockingConnection(pika.URLParameters(own_broker_url))
    channel = connection.channel()
    channel.confirm_delivery()  # stored (a quorum queue: in its Raft log) before it is fetched
    for routing_key, n in (("tags-harvested", 2), ("org-registered.DQ", 1)):
        for _ in range(n):
            channel.basic_publish("", routing_key, b"{}", pika.BasicProperties(delivery_mode=2))
    # dead-lettered the way RabbitMQ does it: rejected without requeue, routed to Q.XQ
    for _ in range(3):
        channel.basic_publish("", "account-validated", b"{}")
    for _ in range(3):
        method, _, _ = channel.basic_get("account-validated")
        channel.basic_nack(method.delivery_tag, requeue=False)

    def counted() -> Samples | None:
        samples = scrape(exporter_url)
        dead = sample(
            samples, "orgsync_queue_messages", queue="account-validated", kind="dead_lettered"
        )
        return samples if dead == 3 else None

    samples = wait_until(counted, 20, "the exporter counts the queues")
    connection.close()
    assert sample(samples, "orgsync_queue_messages", queue="tags-harvested", kind="ready") == 2
    assert sample(samples, "orgsync_queue_messages", queue="org-registered", kind="delayed") == 1
    assert sample(samples, "orgsync_queue_messages", queue="account-validated", kind="ready") == 0
    assert sample(samples, "orgsync_queue_consumers", queue="tags-harvested") == 0
    assert sample(samples, "orgsync_exporter_up", service="rabbitmq") == 1


@pytest.fixture
def proxied(settings: Settings, own_broker_url: str) -> Iterator[tuple[str, TcpProxy, TcpProxy]]:
    params = conninfo_to_dict(settings.database_url)
    pg = TcpProxy((str(params.get("host", "127.0.0.1")), int(params.get("port", 5432))))
    amqp_url = urlsplit(own_broker_url)
    amqp = TcpProxy((amqp_url.hostname or "127.0.0.1", amqp_url.port or 5672))
    through = dataclasses.replace(
        settings,
        database_url=make_conninfo(settings.database_url, host="127.0.0.1", port=pg.port),
        broker_url=urlunsplit(amqp_url._replace(netloc=f"guest:guest@127.0.0.1:{amqp.port}")),
    )
    base, (server, house) = start(through)
    yield base, pg, amqp
    server.shutdown()
    house.close()
    pg.cut()
    amqp.cut()


@pytest.mark.parametrize(
    ("service", "named"), [("postgresql", "PostgreSQL"), ("rabbitmq", "RabbitMQ")]
)
def test_healthz_says_which_service_is_gone_and_recovers_when_it_is_back(
    proxied: tuple[str, TcpProxy, TcpProxy], service: str, named: str
) -> None:
    base, pg, amqp = proxied
    proxy = pg if service == "postgresql" else amqp
    assert healthz(base) == (200, {"ok": True, "postgresql": "ok", "rabbitmq": "ok"})
    assert sample(scrape(base), "orgsync_exporter_up", service=service) == 1

    proxy.cut()
    status, body = healthz(base)
    assert status == 503 and not body["ok"]
    assert named in body[service] and "unreachable" in body[service]
    samples = scrape(base)  # /metrics still answers, with what it could read
    assert sample(samples, "orgsync_exporter_up", service=service) == 0
    other = "rabbitmq" if service == "postgresql" else "postgresql"
    assert sample(samples, "orgsync_exporter_up", service=other) == 1

    proxy.restore()
    assert wait_until(lambda: healthz(base)[0] == 200, 20, "/healthz back to 200")
    assert sample(scrape(base), "orgsync_exporter_up", service=service) == 1


class ManagementApi(BaseHTTPRequestHandler):
    """RabbitMQ's management API, as far as the exporter reads it (GET /api/queues/<vhost>),
    with the fields RabbitMQ returns; the machine's RabbitMQ runs without the plugin."""

    queues: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        assert self.headers["Authorization"].startswith("Basic ")
        body = json.dumps(self.queues).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_management_api_adds_messages_in_flight_and_delayed_ones_a_worker_holds(
    settings: Settings, own_broker_url: str
) -> None:
    declare_queues(own_broker_url)
    ManagementApi.queues = [
        {
            "name": "account-discovered",
            "messages": 9,
            "messages_unacknowledged": 4,
            "message_stats": {"publish_details": {"rate": 2.5}},
        },
        # delayed retries sit unacked in a worker until due: only the API counts them
        {"name": "account-discovered.DQ", "messages": 6, "messages_unacknowledged": 6},
    ]
    api = ThreadingHTTPServer(("127.0.0.1", 0), ManagementApi)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    management = f"http://guest:guest@127.0.0.1:{api.server_port}"
    base, (server, house) = start(
        dataclasses.replace(settings, broker_url=own_broker_url, rabbitmq_management_url=management)
    )
    try:
        samples = scrape(base)
    finally:
        server.shutdown()
        house.close()
        api.shutdown()
    queue = {"queue": "account-discovered"}
    assert sample(samples, "orgsync_queue_messages", **queue, kind="in_flight") == 4
    assert sample(samples, "orgsync_queue_messages", **queue, kind="delayed") == 6
    assert sample(samples, "orgsync_queue_messages", queue="tags-harvested", kind="in_flight") == 0
    assert sample(samples, "orgsync_exporter_up", service="rabbitmq_management") == 1
