"""The "webhooks" phase of bench.py (issue 28): a first sync with and without a webhook.

Two first syncs of the same organization (`--accounts`, the scale simulator), each on a
database and a vhost of its own and with the same workers: the first with no webhook, the
second with one receiver on loopback (orgsync/services/testing/webhook_receiver.py: it verifies
every signature with `standardwebhooks` and de-duplicates on `webhook-id`, as a receiver
should). Both organizations have a change-event feed (moto's EventBridge and SQS), so the two
runs do the same work but for the webhook. Then, with the receiver, `--tag-changes` accounts are
re-tagged in AWS and each change is sent as the CloudTrail event AWS would publish; measured:
event sent → its `orgsync.account.badges_changed` webhook received.

Reported under `webhooks`: rate_with / rate_without (accounts/s of each first sync),
added_events (`orgsync.account.added` committed), added_delivered_once (of those, received and
counted once by the receiver's idempotency), badges_changed_p99_s; and how long the deliveries
took to drain after the sync.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from pathlib import Path
from typing import Any

from orgsync.pipelines.credentials import Keyring, generate_key
from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings
from orgsync.services.testing import scale_aws
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.organization_events import create_feed, publish, tag_account
from orgsync.services.testing.sample_org import aws_client
from orgsync.services.testing.webhook_receiver import Receiver
from orgsync.services.use_cases import webhooks

TARGETS = {"rate_with_over_without": 0.9, "badges_changed_p99_s": 5.0}
SEND_RATE = 20.0  # tag-change events a second


def run(bench: Any, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    server_url = os.environ.get(
        "ORGSYNC_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres"
    )
    broker_base = os.environ.get("ORGSYNC_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672")
    keyring = Keyring([generate_key("bench")])
    result: dict[str, Any] = {}
    with bench.simulator(args, workdir) as endpoint, SimulatedAws() as moto:
        org = scale_aws.describe(endpoint)
        for with_webhook in (False, True):
            with (
                bench.scratch_database(server_url) as database_url,
                bench.scratch_vhost(broker_base) as broker,
            ):
                settings = Settings(
                    database_url=database_url, broker_url=broker, encryption_keys=keyring.format()
                )
                env = {
                    **bench.worker_env(settings, endpoint, budget=not args.no_budget),
                    "AWS_ENDPOINT_URL_SQS": moto.endpoint_url,
                }
                log = workdir / f"webhooks-{'with' if with_webhook else 'without'}.log"
                with bench.workers_running(args, env, log, settings), House(settings) as house:
                    result.update(
                        one_run(bench, args, house, keyring, org, endpoint, moto, with_webhook)
                    )
    return report(bench, result)


def one_run(
    bench: Any,
    args: argparse.Namespace,
    house: House,
    keyring: Keyring,
    org: dict[str, Any],
    endpoint: str,
    moto: SimulatedAws,
    with_webhook: bool,
) -> dict[str, Any]:
    receiver = Receiver()
    if with_webhook:
        receiver.start()
        with house.connect() as conn:
            webhooks.add(conn, keyring, receiver.url, receiver.secret)
    try:
        queue_url = create_feed(moto.endpoint_url, f"webhooks-{uuid.uuid4().hex[:6]}")
        started = time.time()
        org_id, finished = bench.first_sync(house, org, args.timeout, events_queue_url=queue_url)
        imported = count(house, "SELECT count(*) AS n FROM accounts WHERE org_id = %s", org_id)
        rate = imported / (finished - started)
        if not with_webhook:
            return {"rate_without": rate, "wall_without_s": finished - started}
        drained = wait_drained(house, args.timeout) - finished
        added = delivered_once(house, receiver)
        latencies = tag_changes(args, house, org_id, endpoint, moto, receiver)
        return {
            "rate_with": rate,
            "wall_with_s": finished - started,
            "accounts": imported,
            "drained_after_sync_s": drained,
            **added,
            "requests": len(receiver.received),
            "rejected_signatures": len(receiver.rejected),
            "badges_changed_s": latencies,
        }
    finally:
        receiver.stop()


def wait_drained(house: House, timeout: float) -> float:
    """When no event waits to be fanned out and no delivery is pending (epoch seconds)."""
    query = (
        "SELECT (SELECT count(*) FROM outbound_events WHERE fanned_out_at IS NULL)"
        " + (SELECT count(*) FROM webhook_deliveries WHERE state = 'pending') AS n"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with house.connect() as conn:
            row = conn.execute(query).fetchone()
        if row and row["n"] == 0:
            return time.time()
        time.sleep(0.2)
    raise RuntimeError(f"deliveries not drained in {timeout:.0f} s")


def count(house: House, query: str, *params: object) -> int:
    with house.connect() as conn:
        row = conn.execute(query, params).fetchone()
    return int(row["n"]) if row else 0


def delivered_once(house: House, receiver: Receiver) -> dict[str, int]:
    """account.added events committed, and those the receiver applied exactly once: by its
    idempotency on webhook-id, each distinct id it got is one event applied."""
    with house.connect() as conn:
        rows = conn.execute(
            "SELECT id::text AS id FROM outbound_events WHERE type = 'orgsync.account.added'"
        ).fetchall()
    ids = {r["id"] for r in rows}
    received = receiver.ids()
    return {
        "added_events": len(ids),
        "added_delivered_once": len(ids & set(received)),
        "added_retried": sum(received[i] - 1 for i in ids & set(received)),
    }


def tag_changes(
    args: argparse.Namespace,
    house: House,
    org_id: str,
    endpoint: str,
    moto: SimulatedAws,
    receiver: Receiver,
) -> list[float]:
    """Re-tag accounts in AWS, send each change as its event, and time each one to its
    badges_changed webhook."""
    from feed_bench import sample  # beside this module; it imports bench, which imports this

    chosen = sample(house.settings, org_id, args.tag_changes)
    management = scale_aws.describe(endpoint)["org_role_arn"].split(":")[4]
    orgs = aws_client(endpoint, "organizations")
    bus = aws_client(moto.endpoint_url, "events")
    sent: dict[str, tuple[str, float]] = {}
    for account_id in chosen:
        value = uuid.uuid4().hex[:8]
        record = tag_account(endpoint, account_id, {"webhook-bench": value}, orgs, management)
        sent[account_id] = (value, time.time())
        publish(moto.endpoint_url, [record], bus)
        time.sleep(1.0 / SEND_RATE)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        got = arrivals(receiver, sent)
        if len(got) == len(sent):
            return sorted(got[a] - sent[a][1] for a in sent)
        time.sleep(0.2)
    raise RuntimeError(f"{len(sent) - len(arrivals(receiver, sent))} badges_changed never came")


def arrivals(receiver: Receiver, sent: dict[str, tuple[str, float]]) -> dict[str, float]:
    """When each account's badges_changed carrying its new value was first received."""
    first: dict[str, float] = {}
    with receiver.lock:
        for got in receiver.received:
            event = got.event
            account = event.get("subject")
            if event["type"] != "orgsync.account.badges_changed" or account not in sent:
                continue
            values = {b["key"]: b["value"] for b in event["data"]["badges"]}
            if values.get("webhook-bench") == sent[account][0]:
                first.setdefault(account, got.at)
    return first


def report(bench: Any, result: dict[str, Any]) -> dict[str, Any]:
    latencies = result.pop("badges_changed_s")
    result["badges_changed_p50_s"] = bench.percentile(latencies, 50)
    result["badges_changed_p99_s"] = bench.percentile(latencies, 99)
    result["badges_changed_max_s"] = max(latencies, default=None)
    result["tag_changes"] = len(latencies)
    result["rate_with_over_without"] = result["rate_with"] / result["rate_without"]
    result["targets"] = TARGETS
    return result


def table(phase: dict[str, Any]) -> str:
    rows = [
        ("first sync, accounts/s with / without", "{:.1f} / {:.1f} ({:.2f})".format(
            phase["rate_with"], phase["rate_without"], phase["rate_with_over_without"]
        ), ">= 0.90 of without"),
        ("account.added delivered once / events", "{} / {}".format(
            phase["added_delivered_once"], phase["added_events"]
        ), "all"),
        ("deliveries drained after the sync (s)", f"{phase['drained_after_sync_s']:.1f}", ""),
        ("tag change -> badges_changed webhook p50 / p99 (s)", "{:.2f} / {:.2f}".format(
            phase["badges_changed_p50_s"], phase["badges_changed_p99_s"]
        ), "p99 <= 5"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    lines = [f"webhooks phase ({phase['accounts']} accounts, one receiver on loopback)"]
    lines += [f"  {name:<{width}}  {value:<24} target {target}" for name, value, target in rows]
    return "\n".join(lines)
