"""The bench's "throttled" phase: a first sync against a simulator that throttles by rate.

The scale simulator gives every (API, calling account) a token bucket of `rate` calls/s and
`rate` calls of burst. Three first syncs of the same organization, each on a database and a
vhost of its own (so the budget learns from nothing): 2 worker processes on the shared rate
budget; the same with 2 more worker processes started once half the accounts are validated;
2 worker processes with the budget off (`ORGSYNC_AWS_BUDGET=false`), for contrast.

`floor_s` is the least time the buckets allow: for each API, the calls AWS answered beyond
its burst, at its rate; the slowest API sets it. Targets: wall time within 1.15x the floor,
throttled answers within 2 % of calls, no failed account, and no worse with 4 processes.
"""

from __future__ import annotations

import argparse
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from orgsync.services.adapters import db
from orgsync.services.bootstrap import House
from orgsync.services.read_models import inventory
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAwsControl
from orgsync.services.use_cases import registering, syncs

TARGETS = {"wall_to_floor": 1.15, "throttled_share": 0.02, "failed_accounts": 0}


def floor_seconds(counts: dict[str, dict[str, int]], rate: float, burst: float) -> float:
    """The slowest API's answered calls beyond its burst, at its rate."""
    throttled = counts.get("throttled", {})
    answered = {op: n - throttled.get(op, 0) for op, n in counts["operations"].items()}
    return max((max(0.0, n - burst) / rate for n in answered.values()), default=0.0)


def failed_accounts(settings: Settings, org_id: str) -> int:
    with db.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT count(*)::int AS n FROM accounts WHERE org_id = %s"
            " AND status NOT IN ('ok', 'suspended')",
            (org_id,),
        ).fetchone()
    return int(row["n"]) if row else 0


def validated_share(settings: Settings, sync_id: str, accounts: int) -> float:
    """The share of the organization's `accounts` that the sync has validated so far."""
    with db.connect(settings.database_url) as conn:
        stages = inventory.sync_progress(conn, sync_id)["stages"]
    return (sum(stages.values()) - stages.get("discovered", 0)) / accounts


def one_sync(
    bench: Any,  # benchmarks/bench.py, whose helpers this phase shares
    args: argparse.Namespace,
    endpoint: str,
    workdir: Path,
    name: str,
    budget: bool,
    more_workers: bool,
) -> dict[str, Any]:
    """One first sync through the throttling simulator; its figures."""
    sim = SimulatedAwsControl(endpoint)
    with ExitStack() as stack:
        settings = stack.enter_context(bench.scratch_services())
        env = bench.worker_env(settings, endpoint, budget=budget)
        stack.enter_context(bench.workers_running(args, env, workdir / f"{name}.log", settings))
        house = stack.enter_context(House(settings))
        time.sleep(1.0)  # the simulator's buckets refill after the previous run
        sim.reset_counts()
        started = time.time()
        org = bench.scale_aws.describe(endpoint)
        request = bench.registration_request(org)
        registering.submit(house, request)
        verdict = registering.wait_verdict(house, request["request_id"], args.timeout)
        if not verdict.accepted or verdict.org_id is None:
            raise RuntimeError(f"registration rejected: {verdict.as_json()}")
        sync_id = syncs.latest_sync(house, verdict.org_id)
        assert sync_id is not None
        joined_at = None
        deadline = time.monotonic() + args.timeout
        while True:
            with db.connect(settings.database_url) as conn:
                if inventory.sync_finished(inventory.sync_progress(conn, sync_id)):
                    break
            if (
                more_workers
                and joined_at is None
                and validated_share(settings, sync_id, org["accounts"]) >= 0.5
            ):
                stack.enter_context(
                    bench.subprocess_running(
                        bench.worker_argv(args), env, workdir / f"{name}-more.log"
                    )
                )
                joined_at = time.time() - started
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: sync {sync_id} unfinished after {args.timeout} s")
            time.sleep(0.2)
        wall = bench.wait_synced(settings, sync_id, args.timeout) - started
        counts = sim.counts()
        failed = failed_accounts(settings, verdict.org_id)
        with db.connect(settings.database_url) as conn:
            budgets = conn.execute(
                "SELECT scope, api, round(rate::numeric, 1)::float8 AS rate, calls, throttled"
                " FROM aws_budgets ORDER BY scope, api"
            ).fetchall()
    calls = sum(counts["operations"].values())
    throttled = sum(counts.get("throttled", {}).values())
    floor = floor_seconds(counts, args.throttled_rate, args.throttled_rate)
    return {
        "floor_s": round(floor, 1),
        "wall_s": round(wall, 1),
        "calls": calls,
        "throttled_calls": throttled,
        "failed_accounts": failed,
        "wall_to_floor": round(wall / floor, 3) if floor else None,
        "throttled_share": round(throttled / calls, 4) if calls else None,
        "calls_by_api": counts["operations"],
        "throttled_by_api": counts.get("throttled", {}),
        "more_workers_at_s": None if joined_at is None else round(joined_at, 1),
        "budgets": [dict(b) for b in budgets],
    }


def run(bench: Any, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rates = {"*": [args.throttled_rate, args.throttled_rate]}
    spec = argparse.Namespace(**{**vars(args), "accounts": args.throttled_accounts})
    spec.suspended = spec.excluded = spec.accounts // 100
    with bench.simulator(spec, workdir, rates=rates) as endpoint:
        budget = one_sync(bench, args, endpoint, workdir, "throttled", True, False)
        more = one_sync(bench, args, endpoint, workdir, "throttled-more", True, True)
        no_budget = one_sync(bench, args, endpoint, workdir, "throttled-no-budget", False, False)
    budget["more_workers"] = more
    met = {
        "wall_to_floor": all(
            (r["wall_to_floor"] or 99) <= TARGETS["wall_to_floor"] for r in (budget, more)
        ),
        "throttled_share": all(
            (r["throttled_share"] or 0) <= TARGETS["throttled_share"] for r in (budget, more)
        ),
        "failed_accounts": budget["failed_accounts"] == more["failed_accounts"] == 0,
        "more_workers_no_worse": more["wall_s"] <= budget["wall_s"] * 1.05,
    }
    return {
        "config": {
            "accounts": spec.accounts,
            "simulator_rates": rates,
            "processes": args.processes,
            "threads": args.threads,
            "latency_ms": args.latency_ms,
        },
        "throttled": budget,
        "throttled_no_budget": no_budget,
        "targets": TARGETS,
        "met": met,
    }


def table(result: dict[str, Any]) -> str:
    cfg = result["config"]
    runs = [
        ("budget, 2 processes", result["throttled"]),
        ("budget, 2 + 2 processes", result["throttled"]["more_workers"]),
        ("no budget, 2 processes", result["throttled_no_budget"]),
    ]
    rows = [("run", "floor s", "wall s", "wall/floor", "calls", "throttled", "failed")]
    for name, r in runs:
        share = r["throttled_share"] or 0
        rows.append(
            (
                name,
                f"{r['floor_s']:.1f}",
                f"{r['wall_s']:.1f}",
                f"{r['wall_to_floor']:.2f}" if r["wall_to_floor"] else "-",
                str(r["calls"]),
                f"{r['throttled_calls']} ({100 * share:.1f} %)",
                str(r["failed_accounts"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        f"throttled: {cfg['accounts']} accounts, simulator buckets {cfg['simulator_rates']} "
        f"(calls/s, burst) per API and calling account, {cfg['latency_ms']:g} ms/call; "
        f"targets {result['targets']}; met {result['met']}"
    ]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
