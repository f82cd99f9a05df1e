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
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import contention_facts as facts
import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.organization_events import cloudtrail_record, create_feed, publish
from orgsync.services.testing.sample_org import aws_client
from orgsync.services.testing.scale_orgs import ScaleAwsControl

A_RATE = 20.0  # calls/s per Organizations API, and as much burst: the issue's throttle
B_SPEC = "accounts=50,depth=2,branching=3,suspended=1,excluded=1,tags_per_account=3,seed=7"
EXCLUDE_PREFIX = "sandbox-"
EVENT_KEY = "contention"
BUDGET_CEILING = 400  # as bench.py: the workers' budget starts above any simulated rate

SYNC_STATE = """
SELECT s.walked_at IS NOT NULL AS walked, s.error,
       extract(epoch FROM s.started_at)::float8 AS started,
       (SELECT count(*) FROM accounts a
         WHERE a.sync_id = s.sync_id AND a.stage IS DISTINCT FROM 'reconciled')::int AS busy,
       (SELECT extract(epoch FROM max(a.stage_at))::float8 FROM accounts a
         WHERE a.sync_id = s.sync_id) AS last
FROM syncs s WHERE s.sync_id = %s
"""


class Orgsync:
    """One orgsync install, run as an operator runs it: its `orgsync` command, in a directory
    of the run's own (so that `python -m` finds the install's package, not a checkout's)."""

    def __init__(self, bin_dir: Path, env: dict[str, str], workdir: Path) -> None:
        self.command = str(bin_dir / "orgsync")
        self.env, self.workdir = env, workdir

    def run(self, *args: str, timeout: float = 600) -> str:
        done = subprocess.run(
            [self.command, *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"orgsync {' '.join(args)}: {done.stderr or done.stdout}")
        return done.stdout

    def json(self, *args: str, timeout: float = 600) -> Any:
        return json.loads(self.run(*args, "--json", timeout=timeout))

    def worker_argv(self, threads: int) -> list[str]:
        return [self.command, "worker", "--processes", "1", "--threads", str(threads)]


class Db:
    def __init__(self, url: str) -> None:
        self.url = url

    def rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        with psycopg.connect(self.url, row_factory=dict_row) as conn:
            return conn.execute(sql, params).fetchall()

    def sync_finished_at(self, sync_id: str) -> float | None:
        """When the sync's last account reached its last stage (epoch s); None while it runs."""
        rows = self.rows(SYNC_STATE, (sync_id,))
        if not rows:
            return None
        state = rows[0]
        if state["error"]:
            raise RuntimeError(f"sync {sync_id} failed: {state['error']}")
        if not state["walked"] or state["busy"]:
            return None
        return float(state["last"] or time.time())

    def started_at(self, sync_id: str) -> float:
        return float(self.rows(SYNC_STATE, (sync_id,))[0]["started"])

    def latest_sync(self, org_id: str) -> str | None:
        rows = self.rows(
            "SELECT sync_id::text FROM syncs WHERE org_id = %s AND trigger <> 'events'"
            " ORDER BY started_at DESC LIMIT 1",
            (org_id,),
        )
        return rows[0]["sync_id"] if rows else None


def wait_for(poll: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while (result := poll()) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return result


# ---- the services of the run's own --------------------------------------------------------


@contextmanager
def scratch_database(orgsync: Orgsync, server_url: str) -> Iterator[str]:
    """A database of the run's own, migrated by the install under test; dropped afterwards."""
    name = f"orgsync_contention_{uuid.uuid4().hex[:8]}"
    url = make_conninfo(server_url, dbname=name)
    orgsync.env["ORGSYNC_DATABASE_URL"] = url
    try:
        orgsync.run("migrate")
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class WorkerPool:
    """`--processes` instances of `orgsync worker --processes 1`, each in a process group."""

    def __init__(self, bench: Any, orgsync: Orgsync, threads: int, workdir: Path) -> None:
        self.bench, self.orgsync, self.threads, self.workdir = bench, orgsync, threads, workdir
        self.stack = ExitStack()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        log = self.workdir / f"contention-worker-{self.started}.log"
        process = self.stack.enter_context(
            self.bench.subprocess_running(
                self.orgsync.worker_argv(self.threads), self.orgsync.env, log, cwd=self.workdir
            )
        )
        self.processes.append(process)
        return process

    def sigterm_and_restart(self, grace_s: float) -> dict[str, Any]:
        """SIGTERM the first worker, time it until its process group has gone, start another."""
        process = self.processes.pop(0)
        group = os.getpgid(process.pid)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        killed = False
        while group_alive(group, process):
            if time.monotonic() - sent > 6 * grace_s:
                os.killpg(group, signal.SIGKILL)
                killed = True
            time.sleep(0.05)
        exited = time.monotonic() - sent
        self.start()
        return {
            "sigterm_exit_s": round(exited, 2),
            "killed_after_s": 6 * grace_s if killed else None,
        }

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()


def group_alive(group: int, leader: subprocess.Popen[bytes]) -> bool:
    """Whether any process of the group is still running (zombies are done)."""
    leader.poll()  # reap the leader once it has exited
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


# ---- the steps -------------------------------------------------------------------------------


def register(orgsync: Orgsync, nickname: str, org: dict[str, Any], queue_url: str | None) -> str:
    """`orgsync register` with auto-badge; the accepted organization's id."""
    argv = ["register", "--nickname", nickname, "--org-role-arn", org["org_role_arn"]]
    argv += ["--org-session-name", "orgsync-bench", "--org-session-duration", "3600"]
    argv += ["--member-role-name", org["member_role_name"]]
    argv += ["--member-session-name", "orgsync-bench-member", "--member-session-duration", "900"]
    argv += ["--exclude-prefix", EXCLUDE_PREFIX, "--auto-badge", "--no-follow", "--timeout", "600"]
    if queue_url:
        argv += ["--events-queue-url", queue_url]
    verdict = orgsync.json(*argv)
    if not verdict.get("accepted") or not verdict.get("org_id"):
        raise RuntimeError(f"registration of {nickname} rejected: {verdict}")
    return str(verdict["org_id"])


def start_sync(orgsync: Orgsync, org_id: str) -> str:
    return str(orgsync.json("sync", org_id)["sync_id"])


def timed_sync(orgsync: Orgsync, db: Db, org_id: str, timeout: float) -> float:
    """A full re-sync, from its row's start to its last account's last stage (database time)."""
    sync_id = start_sync(orgsync, org_id)
    finished = wait_for(lambda: db.sync_finished_at(sync_id), timeout, f"sync {sync_id}")
    return float(finished) - db.started_at(sync_id)


def wait_first_sync(db: Db, org_id: str, timeout: float) -> None:
    sync_id = wait_for(lambda: db.latest_sync(org_id), timeout, f"{org_id}'s first sync")
    wait_for(lambda: db.sync_finished_at(sync_id), timeout, f"{org_id}'s first sync")


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
) -> tuple[list[float], int]:
    """Sent -> badge written per event, waiting up to `timeout` for the last; and how many
    events never got their badge."""
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
            return sorted(written[k] - wanted[k] for k in written), len(wanted) - len(written)
        time.sleep(0.25)


def settle(db: Db, org_ids: list[str], timeout: float) -> None:
    """Wait (up to `timeout`) for every account of the organizations to reach its last stage."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and busy_accounts(db, org_ids):
        time.sleep(0.5)


def busy_accounts(db: Db, org_ids: list[str]) -> int:
    rows = db.rows(
        "SELECT count(*)::int AS n FROM accounts WHERE org_id = ANY(%s)"
        " AND stage IS DISTINCT FROM 'reconciled' AND status <> 'removed'",
        (org_ids,),
    )
    return int(rows[0]["n"])


def failed_accounts(db: Db, org_id: str) -> int:
    rows = db.rows(
        "SELECT count(*)::int AS n FROM accounts WHERE org_id = %s"
        " AND status NOT IN ('ok', 'suspended', 'removed')",
        (org_id,),
    )
    return int(rows[0]["n"])


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
        orgsync.run("keys", "generate")
        database = stack.enter_context(scratch_database(orgsync, server_url))
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
            a_finished = wait_for(
                lambda: db.sync_finished_at(a_sync), args.timeout, "A's re-sync", 0.25
            )
            a_counts = control.org(management)["counts"]
        finally:
            stop.set()
        sent = events.result()
        results = (b_during.result(), sigterm.result())
    control.set_org(management, rates={})
    latencies, unbadged = badge_latencies(db, sent, max(60.0, 4 * len(sent)))
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
        latencies=latencies,
        unbadged=unbadged,
        failed={"A": failed_accounts(db, a_id), "B": failed_accounts(db, b_id)},
        sigterm=results[1],
        inventory=inventory,
    )


def install_commit(bin_dir: Path) -> str | None:
    """The commit of the checkout whose venv `bin_dir` is, when it is one."""
    done = subprocess.run(
        ["git", "-C", str(bin_dir.parent.parent), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or None


def report(
    args: argparse.Namespace,
    plan: facts.Schedule,
    *,
    b_alone: float,
    b_during: float,
    a_wall: float,
    floor: dict[str, Any],
    latencies: list[float],
    unbadged: int,
    failed: dict[str, int],
    sigterm: dict[str, Any],
    inventory: facts.Counts,
) -> dict[str, Any]:
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
