"""The bench's "queue_types" phase (issue 27): full syncs with classic queues and with quorum
queues, on one RabbitMQ node, in one run.

Each type gets a database and a vhost of its own, workers started with ORGSYNC_QUEUE_TYPE set
to it, and the same organization of `--accounts` on the same simulator, registered and synced
once (not counted). Then ROUNDS full syncs of each, one type after the other so that the shared
machine's load moves both alike (one round with --smoke), and per type the medians of
`accounts_per_s` and `cpu_ms_per_account` (the workers' CPU, as the bench's other phases count
it), and `rabbitmq_cpu_ms_per_account`, the RabbitMQ node's own CPU over the sync (a quorum
queue's cost is mostly there: its Raft log is written and fsynced; the node is shared with
whatever else runs on the machine, so that figure is only as quiet as the machine). Target:
quorum within 10 % of classic in rate and in the workers' CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import subprocess
from pathlib import Path
from typing import Any

from orgsync.services.bootstrap import House
from orgsync.services.testing.moto_aws import SimulatedAwsControl
from orgsync.services.use_cases import syncs

TYPES = ("classic", "quorum")
TARGET = 0.10  # quorum's rate and workers' CPU within 10 % of classic's
ROUNDS = 3  # full syncs per type, one type after the other; the median is reported


def run(bench: Any, args: Any, endpoint: str, org: dict[str, Any], workdir: Path) -> dict[str, Any]:
    sim = SimulatedAwsControl(endpoint)
    node = rabbitmq_pid()
    rounds = 1 if args.smoke else ROUNDS
    samples: dict[str, list[dict[str, float | None]]] = {t: [] for t in TYPES}
    with contextlib.ExitStack() as stack:
        pools = {t: pool(bench, args, endpoint, org, workdir, stack, t) for t in TYPES}
        for _ in range(rounds):  # interleaved: the machine's load moves both alike
            for queue_type, (house, workers, org_id) in pools.items():
                before = bench.cpu_seconds(node) if node else None

                def sync(house: House = house, org_id: str = org_id) -> float:
                    sync_id = syncs.sync(house, org_id, trigger="bench")
                    return float(bench.wait_synced(house.settings, sync_id, args.timeout))

                phase = bench.measure(workers, sim, sync)
                broker = bench.cpu_seconds(node) - before if before is not None else None
                samples[queue_type].append(
                    {
                        "accounts_per_s": args.accounts / phase["wall_s"],
                        "cpu_ms_per_account": 1000 * phase["cpu_s"] / args.accounts,
                        "rabbitmq_cpu_ms_per_account": (
                            None if broker is None else 1000 * broker / args.accounts
                        ),
                    }
                )
    result: dict[str, Any] = {"rounds": rounds}
    for queue_type, runs in samples.items():
        result[queue_type] = {key: median(runs, key) for key in runs[0]}
        result[queue_type]["accounts_per_s_each"] = [
            round(r["accounts_per_s"] or 0, 1) for r in runs
        ]
    quorum, classic = result["quorum"], result["classic"]
    result["quorum_vs_classic"] = {
        "rate": round(quorum["accounts_per_s"] / classic["accounts_per_s"], 3),
        "cpu": round(quorum["cpu_ms_per_account"] / classic["cpu_ms_per_account"], 3),
    }
    return result


def pool(
    bench: Any,
    args: Any,
    endpoint: str,
    org: dict[str, Any],
    workdir: Path,
    stack: contextlib.ExitStack,
    queue_type: str,
) -> tuple[House, Any, str]:
    """Workers with ORGSYNC_QUEUE_TYPE=`queue_type` on a database and vhost of their own, the
    organization registered there and its first sync done (not counted)."""
    scratch = stack.enter_context(bench.scratch_services())
    settings = dataclasses.replace(scratch, queue_type=queue_type)
    env = {
        **bench.worker_env(settings, endpoint, budget=not args.no_budget),
        "ORGSYNC_QUEUE_TYPE": queue_type,
    }
    log = workdir / f"worker-{queue_type}.log"
    process = stack.enter_context(bench.workers_running(args, env, log, settings))
    house = stack.enter_context(House(settings))
    org_id, _ = bench.first_sync(house, org, args.timeout)
    return house, bench.Workers(process.pid), org_id


def median(runs: list[dict[str, float | None]], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return round(statistics.median(values), 2) if values else None  # type: ignore[type-var]


def rabbitmq_pid() -> int | None:
    """The local RabbitMQ node's Erlang VM, when rabbitmqctl reaches it."""
    try:
        done = subprocess.run(
            ["rabbitmqctl", "-q", "eval", "os:getpid()."],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return int(done.stdout.strip().strip('"'))
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def table(result: dict[str, Any]) -> str:
    ratio = result["quorum_vs_classic"]
    lines = [
        f"queue types (full syncs, one RabbitMQ node; medians of {result['rounds']} each)",
        f"{'type':<8} {'accounts/s':>10} {'worker CPU ms/acct':>18} {'RabbitMQ CPU ms/acct':>20}",
    ]
    for queue_type in TYPES:
        row = result[queue_type]
        broker = row["rabbitmq_cpu_ms_per_account"]
        lines.append(
            f"{queue_type:<8} {row['accounts_per_s']:>10.1f} {row['cpu_ms_per_account']:>18.2f}"
            f" {'-' if broker is None else f'{broker:.2f}':>20}"
        )
    lines.append(
        f"quorum/classic: rate {ratio['rate']:.2f}, worker CPU {ratio['cpu']:.2f}"
        f" (target: within {TARGET:.0%})"
    )
    return "\n".join(lines)
