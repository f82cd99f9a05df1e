"""The change-event feed at organization scale (`make bench`, after bench.py).

An organization of `--accounts` members (the scale simulator, `--latency-ms` per call) is
registered with an events queue and synced once by `orgsync worker` (every stage, `events`
included). Then `--events` accounts are re-tagged in AWS and, for each, the CloudTrail record
AWS would publish is put on EventBridge (moto, whose rule delivers it to the SQS queue, as in
AWS; SQS and EventBridge are served by moto through AWS_ENDPOINT_URL_SQS). Measured: per
event, sent → its badge written (badge_history, the reconciler's transaction time); the AWS
calls orgsync made during the phase (the simulator's Organizations/STS counts and moto's SQS
counts) per event; and whether any full sync started. Prints a table and one JSON document.

    .venv/bin/python benchmarks/feed_bench.py [--accounts 10000] [--events 100]
    .venv/bin/python benchmarks/feed_bench.py --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (
    aws_env,
    percentile,
    registration_request,
    scratch_database,
    scratch_vhost,
    simulator,
    wait_for,
    wait_synced,
    workers_running,
)

from orgsync.pipelines.credentials import Keyring, generate_key
from orgsync.services.adapters import db
from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings
from orgsync.services.testing import scale_aws
from orgsync.services.testing.moto_aws import SimulatedAws, SimulatedAwsControl
from orgsync.services.testing.organization_events import (
    create_feed,
    publish,
    tag_account,
)
from orgsync.services.testing.sample_org import aws_client
from orgsync.services.use_cases import registering, syncs

TARGETS = {"sent_to_badge_p99_s": 5.0, "aws_calls_per_event": 3.0, "full_syncs": 0}
SQS_CALLS = ("ReceiveMessage", "DeleteMessage", "DeleteMessageBatch")


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="orgsync-feed-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server_url = os.environ.get(
        "ORGSYNC_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres"
    )
    broker_base = os.environ.get("ORGSYNC_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672")
    keyring = Keyring([generate_key("bench")])
    with (
        simulator(args, workdir) as endpoint,
        SimulatedAws() as moto,
        scratch_database(server_url) as database_url,
        scratch_vhost(broker_base) as broker,
    ):
        settings = Settings(
            database_url=database_url, broker_url=broker, encryption_keys=keyring.format()
        )
        return measure(args, settings, endpoint, moto, workdir)


def measure(
    args: argparse.Namespace, settings: Settings, endpoint: str, moto: SimulatedAws, workdir: Path
) -> dict[str, Any]:
    org = scale_aws.describe(endpoint)
    management = org["org_role_arn"].split(":")[4]
    queue_url = create_feed(moto.endpoint_url)
    env = dict(
        os.environ,
        **aws_env(endpoint),
        AWS_ENDPOINT_URL_SQS=moto.endpoint_url,
        ORGSYNC_DATABASE_URL=settings.database_url,
        ORGSYNC_BROKER_URL=settings.broker_url,
        ORGSYNC_ENCRYPTION_KEYS=settings.encryption_keys or "",
    )
    with workers_running(args, env, workdir / "worker.log", settings), House(settings) as house:
        started = time.time()
        org_id = register(house, org, queue_url, args.timeout)
        synced_s = time.time() - started
        syncs_before = full_syncs(settings, org_id)
        chosen = sample(settings, org_id, args.events)
        aws = SimulatedAwsControl(endpoint)
        aws.reset_counts()
        moto.faults.reset_counts()
        orgs = aws_client(endpoint, "organizations")
        events_client = aws_client(moto.endpoint_url, "events")
        sent: dict[str, tuple[str, float]] = {}
        records = []
        for account_id in chosen:
            value = uuid.uuid4().hex[:8]
            record = tag_account(endpoint, account_id, {"feed-bench": value}, orgs, management)
            if args.burst:  # every tag first, then the events, 10 to a PutEvents
                records.append((account_id, value, record))
                continue
            sent[account_id] = (value, time.time())
            publish(moto.endpoint_url, [record], events_client)
            time.sleep(1.0 / args.rate)
        at = time.time()
        for account_id, value, _ in records:
            sent[account_id] = (value, at)
        publish(moto.endpoint_url, [r for _, _, r in records], events_client)
        written = wait_for(
            lambda: badges_written(settings, sent), args.timeout, "every badge", interval=0.25
        )
        time.sleep(args.wait_seconds_idle)  # the feed's idle polls after the last event count too
        handled = handled_at(settings, org_id)
        # the bench's own TagResource calls are not orgsync's
        org_calls = {k: n for k, n in aws.counts()["operations"].items() if k != "TagResource"}
        sqs_calls = {k: n for k, n in moto.faults.counts()["operations"].items() if k in SQS_CALLS}
        syncs_after = full_syncs(settings, org_id)
    latencies = [written[a] - at for a, (_, at) in sent.items()]
    to_feed = [handled[a] - at for a, (_, at) in sent.items() if a in handled]
    calls = sum(org_calls.values()) + sum(sqs_calls.values())
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared",
        "accounts": args.accounts,
        "events": len(sent),
        "sending": "burst" if args.burst else f"{args.rate:g} a second, one at a time",
        "first_sync_s": round(synced_s, 1),
        "sent_to_badge_s": {
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "max": max(latencies),
        },
        "sent_to_feed_commit_s": {"p50": percentile(to_feed, 50), "p99": percentile(to_feed, 99)},
        "aws_calls": {"organizations_sts": org_calls, "sqs": sqs_calls, "total": calls},
        "aws_calls_per_event": round(calls / len(sent), 2),
        "full_syncs": syncs_after - syncs_before,
        "targets": TARGETS,
    }


def register(house: House, org: dict[str, Any], queue_url: str, timeout: float) -> str:
    """Register the organization with its events queue; returns once its first sync is done."""
    request = {**registration_request(org), "events_queue_url": queue_url}
    registering.submit(house, request)
    verdict = registering.wait_verdict(house, request["request_id"], timeout)
    if not verdict.accepted or verdict.org_id is None:
        raise RuntimeError(f"registration rejected: {verdict.as_json()}")
    sync_id = syncs.latest_sync(house, verdict.org_id)
    assert sync_id is not None
    wait_synced(house.settings, sync_id, timeout)
    return verdict.org_id


def sample(settings: Settings, org_id: str, count: int) -> list[str]:
    with db.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT account_id FROM accounts WHERE org_id = %s AND status = 'ok'"
            " ORDER BY account_id",
            (org_id,),
        ).fetchall()
    ids = [r["account_id"] for r in rows]
    return ids[:: max(1, len(ids) // count)][:count]


def badges_written(
    settings: Settings, sent: dict[str, tuple[str, float]]
) -> dict[str, float] | None:
    with db.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT account_id, new_value, extract(epoch FROM at)::float8 AS at"
            " FROM badge_history WHERE key = 'feed-bench' AND account_id = ANY(%s)",
            (list(sent),),
        ).fetchall()
    found = {r["account_id"]: r["at"] for r in rows if r["new_value"] == sent[r["account_id"]][0]}
    return found if len(found) == len(sent) else None


def handled_at(settings: Settings, org_id: str) -> dict[str, float]:
    """When the feed committed each account's event (epoch seconds)."""
    with db.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT target, extract(epoch FROM handled_at)::float8 AS at FROM change_events"
            " WHERE org_id = %s AND outcome = 'applied'",
            (org_id,),
        ).fetchall()
    return {r["target"]: r["at"] for r in rows}


def full_syncs(settings: Settings, org_id: str) -> int:
    with db.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT count(*)::int AS n FROM syncs WHERE org_id = %s AND trigger <> 'events'",
            (org_id,),
        ).fetchone()
    return int(row["n"]) if row else 0


def table(result: dict[str, Any]) -> str:
    latency = result["sent_to_badge_s"]
    rows = [
        ("accounts (first sync, s)", f"{result['accounts']} ({result['first_sync_s']})", ""),
        ("events sent", str(result["events"]), ""),
        (
            "sent -> badge p50 / p99 / max (s)",
            f"{latency['p50']:.2f} / {latency['p99']:.2f} / {latency['max']:.2f}",
            f"p99 <= {TARGETS['sent_to_badge_p99_s']}",
        ),
        (
            "AWS calls per event",
            f"{result['aws_calls_per_event']} ({result['aws_calls']['total']} in all)",
            f"<= {TARGETS['aws_calls_per_event']}",
        ),
        ("full syncs started", str(result["full_syncs"]), "0"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"feed bench on {result['machine']}"]
    lines += [f"  {name:<{width}}  {value:<28} target {target}" for name, value, target in rows]
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100, help="tag changes sent as events")
    parser.add_argument("--rate", type=float, default=20.0, help="events sent per second")
    parser.add_argument(
        "--burst", action="store_true", help="tag every account first, then send all the events"
    )
    parser.add_argument("--smoke", action="store_true", help="a small run (~30-60 s)")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--branching", type=int, default=4)
    parser.add_argument("--tags", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--timeout", type=float)
    parser.add_argument("--workdir")
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)
    if args.smoke:
        args.accounts, args.events = min(args.accounts, 200), min(args.events, 20)
        args.depth, args.branching = min(args.depth, 2), min(args.branching, 3)
    args.suspended = args.excluded = 0
    args.throttle_ratio = 0.0
    args.wait_seconds_idle = 0.0
    args.timeout = args.timeout or max(300.0, args.accounts / 20)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run(args)
    print(table(result))
    document = json.dumps(result, indent=2, default=str)
    print(document)
    if args.json_out:
        Path(args.json_out).write_text(document + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
