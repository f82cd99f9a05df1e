"""What one scrape of `orgsync exporter` costs, on an inventory of many accounts.

Creates a scratch database and RabbitMQ vhost, inserts organizations, accounts (most
reconciled, some waiting at each stage), past syncs and failures directly, then scrapes
/metrics over HTTP and prints the wall time per scrape, the SQL queries and round trips, the
AMQP calls, and each query's own execution time. Everything it made is dropped at the end.

    .venv/bin/python benchmarks/scrape_cost.py [--orgs 10] [--accounts 20000] [--scrapes 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg.conninfo import make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orgsync.pipelines.events import QUEUES
from orgsync.services.adapters import db
from orgsync.services.adapters.broker import make_broker
from orgsync.services.bootstrap import House
from orgsync.services.processes import exporter
from orgsync.services.settings import Settings

SEED = """
INSERT INTO organizations (org_id, nickname, management_account_id, partition,
                           credentials_key_id, credentials)
SELECT 'o-bench' || o, 'bench-' || o, '111111111111', 'aws', 'k', '\\x00'
FROM generate_series(1, %(orgs)s) o;

-- %(history)s past syncs per organization, the newest one still running
INSERT INTO syncs (sync_id, org_id, trigger, started_at, walked_at, complete, counts)
SELECT gen_random_uuid(), 'o-bench' || o, 'schedule', now() - h * interval '1 hour',
       now() - h * interval '1 hour' + interval '2 minutes', true,
       '{"seen": 100, "imported": 95, "suspended": 2, "excluded": {"name_prefix:sandbox-": 3}}'
FROM generate_series(1, %(orgs)s) o, generate_series(0, %(history)s - 1) h;

INSERT INTO accounts (account_id, org_id, name, status, sync_id, stage, stage_at, tags)
SELECT lpad(a::text, 12, '0'), 'o-bench' || (a %% %(orgs)s + 1), 'account-' || a,
       (ARRAY['ok','ok','ok','ok','ok','ok','assume_role_failed','suspended','removed',
              'pending'])[a %% 10 + 1],
       (SELECT sync_id FROM syncs s WHERE s.org_id = 'o-bench' || (a %% %(orgs)s + 1)
        ORDER BY started_at DESC LIMIT 1),
       CASE WHEN a %% 50 = 0 THEN 'discovered' WHEN a %% 50 = 1 THEN 'validated'
            WHEN a %% 50 = 2 THEN 'harvested' ELSE 'reconciled' END,
       now() - (a %% 600) * interval '1 second', '{"env": "prod", "team": "core"}'
FROM generate_series(1, %(accounts)s) a;

INSERT INTO failures (account_id, org_id, stage, code, message)
SELECT account_id, org_id, 'validation', 'AccessDenied', 'denied'
FROM accounts WHERE status = 'assume_role_failed';

INSERT INTO rejected_messages (queue_name, reason, body)
SELECT 'account-discovered', 'bench', '{}' FROM generate_series(1, 20);

ANALYZE;
"""


def scratch_vhost(base: str) -> str | None:
    if shutil.which("rabbitmqctl") is None:
        return None
    vhost = f"orgsync-bench-{uuid.uuid4().hex[:8]}"
    for args in (["add_vhost", vhost], ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]):
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True)
    return vhost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=10)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--history", type=int, default=100, help="past syncs per organization")
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "ORGSYNC_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--rabbitmq",
        default=os.environ.get("ORGSYNC_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672"),
    )
    args = parser.parse_args()

    name = f"orgsync_bench_{uuid.uuid4().hex[:8]}"
    database_url = make_conninfo(args.postgres, dbname=name)
    vhost = scratch_vhost(args.rabbitmq)
    broker_url = f"{args.rabbitmq}/{quote(vhost or '/', safe='')}"
    try:
        db.migrate(database_url)
        started = time.perf_counter()
        with psycopg.connect(database_url, autocommit=True) as conn:
            for statement in SEED.split(";\n\n"):
                conn.execute(statement, vars(args))
        seeded = time.perf_counter() - started
        if vhost:
            broker = make_broker(broker_url)
            for queue in QUEUES:
                broker.declare_queue(queue, ensure=True)
            broker.close()
        house = House(Settings(database_url=database_url, broker_url=broker_url))
        server, collector = exporter.make_server(house, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}/metrics"

        urllib.request.urlopen(url).read()  # connections opened: not part of a scrape's cost
        times, sizes = [], []
        for _ in range(args.scrapes):
            started = time.perf_counter()
            sizes.append(len(urllib.request.urlopen(url).read()))
            times.append(time.perf_counter() - started)
        cost = collector.cost
        with psycopg.connect(database_url, autocommit=True) as conn:
            query_ms = {query: explain_ms(conn, sql) for query, sql in exporter.QUERIES.items()}
        server.shutdown()
        house.close()

        print(
            f"inventory: {args.orgs} organizations, {args.accounts} accounts, "
            f"{args.orgs * args.history} syncs (seeded in {seeded:.1f} s); "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        print(
            f"one scrape over HTTP, {args.scrapes} scrapes: median "
            f"{statistics.median(times) * 1000:.1f} ms, p95 "
            f"{sorted(times)[int(len(times) * 0.95) - 1] * 1000:.1f} ms, max "
            f"{max(times) * 1000:.1f} ms; {sizes[-1]} bytes"
        )
        print(
            f"  PostgreSQL: {cost.sql_queries} queries in {cost.sql_round_trips} round trip "
            f"({cost.seconds['postgresql'] * 1000:.1f} ms in the last scrape)"
        )
        print(
            f"  RabbitMQ: {cost.amqp_calls} passive declares on one kept connection "
            f"({cost.seconds['rabbitmq'] * 1000:.1f} ms){'' if vhost else ' [queues missing]'}"
        )
        print("  server-side execution time per query (EXPLAIN ANALYZE):")
        for query, ms in query_ms.items():
            print(f"    {query:<11} {ms:7.2f} ms")
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if vhost:
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)
    return 0


def explain_ms(conn: psycopg.Connection[tuple[object, ...]], sql: str) -> float:
    row = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql).fetchone()
    assert row is not None
    plan = row[0][0]
    return float(plan["Execution Time"]) + float(plan["Planning Time"])


if __name__ == "__main__":
    sys.exit(main())
