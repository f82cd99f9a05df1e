"""orgsync as an operator runs it, for the contention phase: one install's `orgsync` command
(migrations, keys, workers, registration, syncs) and the tables every version has.

Everything here goes through the command line of the install `--orgsync-bin` names, run in a
directory of the run's own (so that the workers' `python -m` finds the install's package, not
a checkout's), and reads PostgreSQL with plain SQL on organizations, accounts and syncs: the
same driver measures today's design and the next one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

EXCLUDE_PREFIX = "sandbox-"

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


def wait_for(poll: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """`poll()` until it returns something other than None (bench.py's phases use it too)."""
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
    finished = wait_for(
        lambda: db.sync_finished_at(sync_id), timeout, f"sync {sync_id}", interval=0.2
    )
    return float(finished) - db.started_at(sync_id)


def wait_first_sync(db: Db, org_id: str, timeout: float) -> None:
    what = f"{org_id}'s first sync"
    sync_id = wait_for(lambda: db.latest_sync(org_id), timeout, what, interval=0.2)
    wait_for(lambda: db.sync_finished_at(sync_id), timeout, what, interval=0.2)


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


def install_commit(bin_dir: Path) -> str | None:
    """The commit of the checkout whose venv `bin_dir` is, when it is one."""
    done = subprocess.run(
        ["git", "-C", str(bin_dir.parent.parent), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or None
