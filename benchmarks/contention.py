"""The bench's "contention" phase (issue 25): does one organization hold up another?

One scale simulator serves organization A (`--accounts`) and organization B (50 accounts, its
own management account, OU tree and tags); moto serves SQS and EventBridge for A's change
events. orgsync is driven only through its processes and command line, from the install
`--orgsync-bin` names (`orgsync migrate`, `keys generate`, `worker`, `register`, `sync`), and
read only through tables every version has (organizations, accounts, syncs, badges,
badge_history), so the same phase measures today's design and the next one on one machine.

1. A and B are registered (auto-badge; A with its events queue) and synced once.
2. B's full re-sync alone: `b_alone_s` (the sync's start to its last account's last stage).
3. The simulator throttles A's Organizations calls to 20 calls/s per API (A's management
   account's buckets; B's are not throttled) and A's full re-sync starts: `a_wall_s`, beside
   `a_floor_s`, the least time the throttle allows (A's answered calls on its busiest
   Organizations API, beyond the burst, at 20 calls/s).
4. `b_delay_s` later (30 s at 10,000 accounts, less for a smaller A) B's full re-sync starts:
   `b_during_s`.
5. Throughout A's re-sync, one account of A a second is re-tagged and its CloudTrail event put
   on EventBridge: sent -> badge (`events_p50_s`, `events_p99_s`).
6. Midway, one of the `--processes` worker processes (`orgsync worker --processes 1` each, as
   `docker compose --scale worker=N` runs them) gets SIGTERM, is timed until its whole process
   group has gone (`sigterm_exit_s`, beside `--grace-s`; after 6x the grace it is killed), and
   is started again.
7. Afterwards: accounts of A and B neither ok nor suspended (`failed_accounts`), and every
   account's stored tags and badges against the simulator: lost, duplicated, wrong.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import contention_facts as facts
from contention_drive import (
    EXCLUDE_PREFIX,
    Db,
    Orgsync,
    WorkerPool,
    busy_accounts,
    failed_accounts,
    install_commit,
    register,
    scratch_database,
    settle,
    start_sync,
    timed_sync,
    wait_first_sync,
    wait_for,
)

from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.organization_events import cloudtrail_record, create_feed, publish
from orgsync.services.testing.sample_org import aws_client
from orgsync.services.testing.scale_orgs import ScaleAwsControl

A_RATE = 20.0  # calls/s per Organizations API, and as much burst: the issue's throttle
B_SPEC = "accounts=50,depth=2,branching=3,suspended=1,excluded=1,tags_per_account=3,seed=7"
EVENT_KEY = "contention"
BUDGET_CEILING = 400  # as bench.py: the workers' budget starts above any simulated rate

# ---- change events and the inventory check ---------------------------------------------------


def at(moment: float, action: Callable[[], Any]) -> Any:
    """`action()` at epoch second `moment` (at once if it has passed)."""
    time.sleep(max(0.0, moment - time.time()))
    return action()


def event_accounts(accounts: list[dict[str, Any]], count: int) -> list[str]:
    """`count` active, included member accounts spread over the organization."""
    members = [
        a["id"]
        for a in accounts[1:]  # the management account first
        if a["state"] == "ACTIVE" and not a["name"].startswith(EXCLUDE_PREFIX)
    ]
    return members[:: max(1, len(members) // count)][:count]


def send_events(
    control: ScaleAwsControl,
    moto_url: str,
    accounts: list[str],
    management: str,
    stop: threading.Event,
) -> list[tuple[str, str, float]]:
    """One account re-tagged a second, its CloudTrail event put on EventBridge, until `stop`;
    (account, new value, epoch second the event was sent) per event."""
    events = aws_client(moto_url, "events")
    started, sent = time.monotonic(), []
    for i, account in enumerate(accounts):
        if stop.is_set():
            break
        value = uuid.uuid4().hex[:8]
        control.tag(account, {EVENT_KEY: value})
        params = {"resourceId": account, "tags": [{"key": EVENT_KEY, "value": value}]}
        record = cloudtrail_record("TagResource", params, management)
        sent_at = time.time()
        publish(moto_url, [record], events)
        sent.append((account, value, sent_at))
        stop.wait(max(0.0, started + i + 1 - time.monotonic()))
    return sent


def badge_latencies(
    db: Db, sent: list[tuple[str, str, float]], timeout: float
) -> tuple[list[tuple[float, str, float]], int]:
    """(sent -> badge written, account, epoch second sent) per event, quickest first, waiting
    up to `timeout` for the last; and how many events never got their badge."""
    wanted = {(account, value): sent_at for account, value, sent_at in sent}
    deadline = time.monotonic() + timeout
    while True:
        rows = db.rows(
            "SELECT account_id, new_value, extract(epoch FROM min(at))::float8 AS at"
            " FROM badge_history WHERE key = %s AND account_id = ANY(%s)"
            " GROUP BY account_id, new_value",
            (EVENT_KEY, [account for account, _, _ in sent]),
        )
        written = {
            (r["account_id"], r["new_value"]): r["at"]
            for r in rows
            if (r["account_id"], r["new_value"]) in wanted
        }
        if len(written) == len(wanted) or time.monotonic() > deadline:
            timed = sorted((written[k] - wanted[k], k[0], wanted[k]) for k in written)
            return timed, len(wanted) - len(written)
        time.sleep(0.25)


def check_inventory(
    db: Db, control: ScaleAwsControl, org: dict[str, Any], org_id: str, nickname: str, since: float
) -> facts.Counts:
    """Each account's stored row, tags and badges against the simulator's accounts now."""
    want = facts.expected(
        control.accounts(org["management_account_id"]), org_id, nickname, EXCLUDE_PREFIX
    )
    accounts = db.rows(
        "SELECT account_id, name, status, org_path, tags FROM accounts"
        " WHERE org_id = %s AND status <> 'removed'",
        (org_id,),
    )
    badges = db.rows(
        "SELECT b.account_id, b.key, b.value FROM badges b JOIN accounts a USING (account_id)"
        " WHERE a.org_id = %s",
        (org_id,),
    )
    repeated = db.rows(
        "SELECT coalesce(sum(n - 1), 0)::int AS n FROM (SELECT count(*) AS n FROM badge_history h"
        " JOIN accounts a USING (account_id) WHERE a.org_id = %s AND h.at >= to_timestamp(%s)"
        " GROUP BY h.account_id, h.key, h.new_value) changes",
        (org_id, since),
    )[0]["n"]
    return facts.compare(
        want, facts.stored(accounts, badges), busy_accounts(db, [org_id]), int(repeated)
    )


# ---- the phase -------------------------------------------------------------------------------


def run(bench: Any, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The phase on a simulator, a moto, a database and a vhost of its own."""
    server_url = os.environ.get(
        "ORGSYNC_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres"
    )
    broker_base = os.environ.get("ORGSYNC_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672")
    bin_dir = Path(args.orgsync_bin).resolve()
    (workdir / "keys").unlink(missing_ok=True)
    with ExitStack() as stack:
        endpoint = stack.enter_context(bench.simulator(args, workdir, others=[B_SPEC]))
        moto = stack.enter_context(SimulatedAws())
        broker = stack.enter_context(bench.scratch_vhost(broker_base))
        env = dict(
            os.environ,
            **bench.aws_env(endpoint),
            AWS_ENDPOINT_URL_SQS=moto.endpoint_url,
            ORGSYNC_BROKER_URL=broker,
            ORGSYNC_ENCRYPTION_KEY_FILE=str(workdir / "keys"),
            ORGSYNC_AWS_RATES=os.environ.get(
                "ORGSYNC_AWS_RATES", f"*=1:{BUDGET_CEILING},AssumeRole=1:{BUDGET_CEILING}"
            ),
        )
        env.pop("ORGSYNC_ENCRYPTION_KEYS", None)
        orgsync = Orgsync(bin_dir, env, workdir)
        database = stack.enter_context(scratch_database(orgsync, server_url))
        # after the database: `keys generate` refuses while the database it is pointed at holds
        # credentials sealed under other keys (the default one may hold `make demo`'s)
        orgsync.run("keys", "generate")
        pool = stack.enter_context(WorkerPool(bench, orgsync, args.threads, workdir))
        for _ in range(args.processes):
            pool.start()
        result = measure(args, orgsync, Db(database), pool, endpoint, moto.endpoint_url)
    result["config"]["orgsync_bin"] = str(bin_dir)
    result["config"]["orgsync_commit"] = install_commit(bin_dir)
    return result


def measure(
    args: argparse.Namespace,
    orgsync: Orgsync,
    db: Db,
    pool: WorkerPool,
    endpoint: str,
    moto_url: str,
) -> dict[str, Any]:
    plan = facts.schedule(args.accounts, A_RATE)
    control = ScaleAwsControl(endpoint)
    org_a, org_b = control.orgs()
    management = org_a["management_account_id"]
    queue_url = create_feed(moto_url)
    with ThreadPoolExecutor(2) as both:
        registered = [
            both.submit(register, orgsync, "contention-a", org_a, queue_url),
            both.submit(register, orgsync, "contention-b", org_b, None),
        ]
        a_id, b_id = (f.result() for f in registered)
    for org_id in (a_id, b_id):
        wait_first_sync(db, org_id, args.timeout)
    b_alone = timed_sync(orgsync, db, b_id, args.timeout)
    chosen = event_accounts(control.accounts(management), plan.events)

    control.reset_counts()
    control.set_org(management, rates={"*": [A_RATE, A_RATE]})
    a_sync = start_sync(orgsync, a_id)
    a_started = db.started_at(a_sync)
    stop = threading.Event()
    with ThreadPoolExecutor(3) as side:
        events: Future[list[tuple[str, str, float]]] = side.submit(
            send_events, control, moto_url, chosen, management, stop
        )
        b_during = side.submit(
            at, a_started + plan.b_delay_s, lambda: timed_sync(orgsync, db, b_id, args.timeout)
        )
        sigterm = side.submit(
            at, a_started + plan.sigterm_at_s, lambda: pool.sigterm_and_restart(args.grace_s)
        )
        try:
            # the throttle alone makes A's re-sync last about its floor: give it three times
            a_timeout = max(args.timeout, 3 * plan.estimated_floor_s)
            a_finished = wait_for(
                lambda: db.sync_finished_at(a_sync), a_timeout, "A's re-sync", 0.25
            )
            a_counts = control.org(management)["counts"]
        finally:
            stop.set()
        sent = events.result()
        results = (b_during.result(), sigterm.result())
    control.set_org(management, rates={})
    timed, unbadged = badge_latencies(db, sent, max(60.0, 4 * len(sent)))
    settle(db, [a_id, b_id], 60)
    inventory = check_inventory(db, control, org_a, a_id, "contention-a", a_started).add(
        check_inventory(db, control, org_b, b_id, "contention-b", a_started)
    )
    return report(
        args,
        plan,
        b_alone=b_alone,
        b_during=results[0],
        a_wall=a_finished - a_started,
        floor=facts.floor_seconds(a_counts, A_RATE, A_RATE),
        timed=[(latency, account, at - a_started) for latency, account, at in timed],
        unbadged=unbadged,
        failed={"A": failed_accounts(db, a_id), "B": failed_accounts(db, b_id)},
        sigterm=results[1],
        inventory=inventory,
    )


def report(
    args: argparse.Namespace,
    plan: facts.Schedule,
    *,
    b_alone: float,
    b_during: float,
    a_wall: float,
    floor: dict[str, Any],
    timed: list[tuple[float, str, float]],
    unbadged: int,
    failed: dict[str, int],
    sigterm: dict[str, Any],
    inventory: facts.Counts,
) -> dict[str, Any]:
    latencies = [latency for latency, _, _ in timed]
    p50, p99 = facts.percentile(latencies, 50), facts.percentile(latencies, 99)
    a_floor = floor["floor_s"]
    targets = {
        "b_during_to_alone": 2.0,
        "events_p99_s": 5.0,
        "a_wall_to_floor": 1.15,
        "failed_accounts": 0,
        "sigterm_exit_s": args.grace_s,
        "lost_duplicated_wrong": [0, 0, 0],
    }
    ratio_b = b_during / b_alone if b_alone > 0 else None
    ratio_a = a_wall / a_floor if a_floor > 0 else None
    return {
        "b_alone_s": round(b_alone, 2),
        "b_during_s": round(b_during, 2),
        "b_during_to_alone": None if ratio_b is None else round(ratio_b, 2),
        "events_p50_s": None if p50 is None else round(p50, 2),
        "events_p99_s": None if p99 is None else round(p99, 2),
        "events_max_s": round(max(latencies), 2) if latencies else None,
        "events_sent": len(latencies) + unbadged,
        "events_without_badge": unbadged,
        # the three slowest: to see what they waited for (the SIGTERM's moment is beside them)
        "slowest_events": [
            {"account": account, "sent_after_s": round(after, 1), "latency_s": round(latency, 2)}
            for latency, account, after in timed[-3:]
        ],
        "a_wall_s": round(a_wall, 1),
        "a_floor_s": round(a_floor, 1),
        "a_wall_to_floor": None if ratio_a is None else round(ratio_a, 2),
        "a_floor_api": floor["api"],
        "a_calls_answered": floor["answered"],
        "a_calls_throttled": floor["throttled"],
        "failed_accounts": sum(failed.values()),
        "failed_by_org": failed,
        **sigterm,
        "lost": inventory.lost,
        "duplicated": inventory.duplicated,
        "wrong": inventory.wrong,
        "facts_checked": inventory.checked,
        "examples": inventory.examples,
        "config": {
            "a_accounts": args.accounts,
            "b": B_SPEC,
            "a_rate": A_RATE,
            "latency_ms": args.latency_ms,
            "processes": args.processes,
            "threads": args.threads,
            "grace_s": args.grace_s,
            "b_delay_s": plan.b_delay_s,
            "sigterm_at_s": plan.sigterm_at_s,
            "events_planned": plan.events,
        },
        "targets": targets,
        "met": {
            "b_during_to_alone": ratio_b is not None and ratio_b <= targets["b_during_to_alone"],
            "events_p99_s": p99 is not None and unbadged == 0 and p99 <= targets["events_p99_s"],
            "a_wall_to_floor": ratio_a is not None and ratio_a <= targets["a_wall_to_floor"],
            "failed_accounts": sum(failed.values()) == 0,
            "sigterm_exit_s": sigterm["killed_after_s"] is None
            and sigterm["sigterm_exit_s"] <= args.grace_s,
            "lost_duplicated_wrong": inventory.lost == inventory.duplicated == inventory.wrong == 0,
        },
    }


def table(result: dict[str, Any]) -> str:
    cfg, targets, met = result["config"], result["targets"], result["met"]

    def mark(key: str) -> str:
        return "met" if met[key] else "NOT met"

    def num(value: float | None, fmt: str = ".1f") -> str:
        return "-" if value is None else format(value, fmt)

    rows = [
        ("figure", "value", "target"),
        ("B re-sync alone (s)", num(result["b_alone_s"], ".2f"), ""),
        (
            "B re-sync during A's (s)",
            f"{num(result['b_during_s'], '.2f')} ({num(result['b_during_to_alone'], '.2f')}x)",
            f"<= {targets['b_during_to_alone']:g}x alone ({mark('b_during_to_alone')})",
        ),
        (
            "A events sent -> badge p50 / p99 (s)",
            f"{num(result['events_p50_s'], '.2f')} / {num(result['events_p99_s'], '.2f')}"
            f" (n={result['events_sent']}, {result['events_without_badge']} without badge)",
            f"p99 <= {targets['events_p99_s']:g} ({mark('events_p99_s')})",
        ),
        (
            "A re-sync wall / floor (s)",
            f"{num(result['a_wall_s'])} / {num(result['a_floor_s'])}"
            f" ({num(result['a_wall_to_floor'], '.2f')}x, floor set by {result['a_floor_api']})",
            f"<= {targets['a_wall_to_floor']:g}x floor ({mark('a_wall_to_floor')})",
        ),
        (
            "failed accounts A / B",
            f"{result['failed_by_org']['A']} / {result['failed_by_org']['B']}",
            f"0 ({mark('failed_accounts')})",
        ),
        (
            "SIGTERM -> worker exited (s)",
            num(result["sigterm_exit_s"], ".2f")
            + (
                f" (killed after {result['killed_after_s']:g} s)"
                if result["killed_after_s"]
                else ""
            ),
            f"<= {targets['sigterm_exit_s']:g} grace ({mark('sigterm_exit_s')})",
        ),
        (
            "lost / duplicated / wrong",
            f"{result['lost']} / {result['duplicated']} / {result['wrong']}"
            f" (of {result['facts_checked']} facts)",
            f"0 / 0 / 0 ({mark('lost_duplicated_wrong')})",
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        f"contention: A {cfg['a_accounts']} accounts throttled to {cfg['a_rate']:g} calls/s per"
        f" Organizations API, B 50 accounts; {cfg['latency_ms']:g} ms/call;"
        f" {cfg['processes']} worker processes x {cfg['threads']} threads;"
        f" B starts {cfg['b_delay_s']:g} s in, SIGTERM {cfg['sigterm_at_s']:g} s in;"
        f" orgsync from {cfg.get('orgsync_bin')} ({cfg.get('orgsync_commit')})"
    ]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
