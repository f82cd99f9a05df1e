"""The cluster faults: the harness's 300-account sync on a three-node RabbitMQ cluster with quorum
queues (tests/faults/cluster.py), while one node is killed, stopped, restarted in turn with the
others, or paused.

Each fault watches the sync's progress (its accounts' stage steps in PostgreSQL, every 0.25 s)
from the moment it strikes until the sync has finished, and notes the longest pause in it: the
time the pipeline took to resume after a node's loss, at most 30 s. It then counts what any
`Q.XQ` holds: nothing failed on its merits here, so a dead letter would be a message the
cluster's trouble pushed past its delivery limit.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from orgsync.services.adapters import queues
from orgsync.services.read_models import inventory
from orgsync.services.use_cases import syncs
from tests.faults.cluster import DIST_OFFSET, Cluster, Node
from tests.faults.harness import SETTLE_TIMEOUT, STEPS, Harness, Run, wait_reconciled
from tests.faults.servers import SERVER_PORTS, PrivatePostgres, is_free
from tests.faults.workers import Supervisor
from tests.support.waiting import wait_until

PAUSE_S = 20.0
AWS_LATENCY_MS = 150.0
RESUME_WITHIN_S = 30.0
POLL_S = 0.25


class ClusterUnavailable(RuntimeError):
    """The three nodes could not be started or joined here."""


def free_block() -> int:
    """A first AMQP port such that it, the next two and their distribution ports (20000 up)
    are free, all below the ephemeral ports (servers.SERVER_PORTS)."""
    rng = random.SystemRandom()
    for _ in range(100):
        first = rng.randrange(SERVER_PORTS.start, SERVER_PORTS.stop - DIST_OFFSET - 3)
        ports = [p for n in range(3) for p in (first + n, first + n + DIST_OFFSET)]
        if all(is_free(port) for port in ports):
            return first
    raise ClusterUnavailable("no free block of loopback ports")


@dataclass
class Observed:
    """What a cluster fault saw beyond the harness's counts."""

    longest_pause_s: float
    dead_letters: int
    # what the workers and nodes logged during a pause past RESUME_WITHIN_S (the harness's
    # folder, logs included, is gone by the time the test asserts)
    logged: list[str] = field(default_factory=list)


class ClusterHarness(Harness):
    """The harness with a three-node cluster of its own in place of its single node."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        port = free_block()
        self.cluster = Cluster(self.base / "cluster", port, prefix=f"orgsync-faults-{port}")
        self.rabbitmq = self.cluster  # type: ignore[assignment]
        self.observed: dict[str, Observed] = {}

    def _setup(self) -> None:
        try:
            self.cluster.init()
        except Exception as error:
            self.cluster.close()
            self.postgres.close = lambda: None  # type: ignore[method-assign]  # never started
            raise ClusterUnavailable(
                f"three RabbitMQ nodes did not start and join ({error}); ORGSYNC_FAULTS_KEEP=1"
                f" keeps their logs in {self.cluster.dir}"
            ) from error
        self.cluster.init = lambda: None  # type: ignore[method-assign]  # started already
        # the port chosen for PostgreSQL at __init__ may have been taken while the nodes started
        self.postgres = PrivatePostgres(self.base)
        super()._setup()
        # AWS's own pace: a sync lasts long enough for every fault, three node restarts
        # included, to strike while it runs
        self.aws.faults.update(latency_ms=AWS_LATENCY_MS)


class Progress(threading.Thread):
    """Samples a run's stage steps from the fault until its sync has finished; the longest
    stretch without a new one, while there was work left."""

    def __init__(self, run: Run) -> None:
        super().__init__(name="progress", daemon=True)
        self.run_ = run
        self.sync_id = run.sync_id  # this sync's, whatever the run starts after it
        self.since = time.monotonic()
        self.moved = [self.since]  # when the steps grew
        self.finished_at: float | None = None

    def run(self) -> None:
        last = -1
        while self.finished_at is None:
            time.sleep(POLL_S)
            try:
                steps, finished = self._sample()
            except Exception:  # PostgreSQL busy: the next sample tells
                continue
            if steps > last:
                if last >= 0:
                    self.moved.append(time.monotonic())
                last = steps
            if finished:
                self.finished_at = time.monotonic()

    def _sample(self) -> tuple[int, bool]:
        assert self.run_.house is not None
        progress = syncs.progress(self.run_.house, self.sync_id)
        steps = sum(STEPS.get(stage, 0) * n for stage, n in progress["stages"].items())
        return steps, inventory.sync_finished(progress)

    def longest_pause(self) -> tuple[float, float]:
        """(seconds, when it began in seconds after the fault struck)."""
        self.join(SETTLE_TIMEOUT)
        times = [*self.moved, self.finished_at or time.monotonic()]
        length, began = max((b - a, a) for a, b in itertools.pairwise(times))
        return length, began - self.since

    def on_the_clock(self, after_fault_s: float) -> float:
        """A time given in seconds after the fault struck, as the logs' clock says it."""
        return time.time() - (time.monotonic() - self.since) + after_fault_s

    def synced_s(self) -> str:
        """When the sync was seen finished, in seconds after the fault struck."""
        return "-" if self.finished_at is None else f"{self.finished_at - self.since:.0f}"


def _strike(harness: Harness, run: Run, fraction: float) -> tuple[ClusterHarness, int]:
    assert isinstance(harness, ClusterHarness)
    return harness, wait_reconciled(run, fraction)


def _leading_most(harness: ClusterHarness, run: Run) -> tuple[Node, int]:
    counts = harness.cluster.leaders(run.name)
    name = max(counts, key=lambda n: counts[n])
    return next(n for n in harness.cluster.nodes if n.name == name), counts[name]


def _through(harness: ClusterHarness, run: Run, progress: Progress) -> None:
    """Until the sync finished: then the longest pause in its progress and the dead letters."""
    pause, began = progress.longest_pause()
    dead = sum(row["dead_lettered"] for row in queues.depths(run.settings.broker_url))
    harness.observed[run.name] = Observed(pause, dead)
    if pause > RESUME_WITHIN_S:
        start = progress.on_the_clock(began)
        harness.observed[run.name].logged = logged_between(harness, run, start, start + pause)
    run.notes.append(
        f"longest pause in progress {pause:.1f} s, from {began:.1f} s after the fault struck;"
        f" sync done {progress.synced_s()} s after it; {dead} dead letter(s)"
    )


def kill_node(harness: Harness, run: Run, workers: Supervisor) -> None:
    cluster, at = _strike(harness, run, random.Random(harness.seed).uniform(0.1, 0.3))
    node, leading = _leading_most(cluster, run)
    progress = Progress(run)
    progress.start()
    node.kill()
    run.notes.append(f"kill -9 {node.name.split('@')[0]} (leader of {leading}) at {at} reconciled")
    wait_until(
        lambda: len(progress.moved) > 3 or progress.finished_at,
        RESUME_WITHIN_S * 2,
        "progress after the kill",
    )
    node.start()
    _through(cluster, run, progress)


def stop_node(harness: Harness, run: Run, workers: Supervisor) -> None:
    rng = random.Random(harness.seed + 1)
    cluster, at = _strike(harness, run, rng.uniform(0.1, 0.3))
    node = rng.choice(cluster.cluster.nodes)
    progress = Progress(run)
    progress.start()
    node.ctl("stop_app")
    run.notes.append(f"stop_app {node.name.split('@')[0]} at {at} reconciled")
    wait_until(
        lambda: len(progress.moved) > 3 or progress.finished_at,
        RESUME_WITHIN_S * 2,
        "progress after stop_app",
    )
    node.ctl("start_app")
    _through(cluster, run, progress)


def rolling_restart(harness: Harness, run: Run, workers: Supervisor) -> None:
    """Each node stopped and started in turn, the next once every queue has its three members
    again; each restart strikes a running sync (another one is started when the last ended)."""
    cluster, at = _strike(harness, run, 0.01)
    first = time.monotonic()
    watched, back, started = [], [], 1
    for node in cluster.cluster.nodes:
        if run.finished():
            assert run.house is not None
            run.sync_id = syncs.sync(run.house, run.org_id, trigger=f"faults:{run.name}")
            started += 1
            wait_until(lambda: run.steps() > 0, RESUME_WITHIN_S, f"{run.name}: a sync under way")
        watched.append(Progress(run))
        watched[-1].start()
        node.stop()
        node.start()
        cluster.cluster.wait_members(run.name)
        back.append(f"{time.monotonic() - first:.0f}")
    run.notes.append(
        f"3 nodes restarted in turn from {at} reconciled, each back {', '.join(back)} s after"
        f" the first stopped, during {started} sync(s)"
    )
    # the longest pause of all three restarts, each watched until the sync it struck ended
    worst = max(watched, key=lambda p: p.longest_pause()[0])
    _through(cluster, run, worst)


def pause_node(harness: Harness, run: Run, workers: Supervisor) -> None:
    cluster, at = _strike(harness, run, random.Random(harness.seed + 2).uniform(0.1, 0.3))
    node, leading = _leading_most(cluster, run)
    progress = Progress(run)
    progress.start()
    node.pause(PAUSE_S)
    run.notes.append(
        f"SIGSTOP {node.name.split('@')[0]} (leader of {leading}) {PAUSE_S:.0f} s at {at}"
        " reconciled"
    )
    _through(cluster, run, progress)


LOGGED_LINES = 40


def logged_between(harness: ClusterHarness, run: Run, start: float, end: float) -> list[str]:
    """The workers' warnings and errors and the nodes' notices, warnings and errors logged
    between two times (seconds since the epoch), oldest first, at most LOGGED_LINES."""
    found: list[tuple[float, str]] = []
    for line in run.log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
            at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if entry.get("level") in ("warning", "error", "critical") and start <= at <= end:
            found.append((at, f"worker {entry['level']}: {entry.get('event')}"))
    for node in harness.cluster.nodes:
        found += _node_lines(node.dir / "log" / f"{node.name}.log", node.name, start, end)
    found.sort()
    lines = [
        f"{datetime.fromtimestamp(at).strftime('%H:%M:%S.%f')[:-3]} {text[:200]}"
        for at, text in found
    ]
    if len(lines) > LOGGED_LINES:
        lines = [*lines[:LOGGED_LINES], f"... and {len(lines) - LOGGED_LINES} more"]
    return lines


def _node_lines(log: Path, name: str, start: float, end: float) -> list[tuple[float, str]]:
    """A node's lines above [info] in the window (`2026-12-04 16:03:32.7+00:00 [notice] ...`);
    its queues' Raft role changes (`leader -> follower in term: 2`) as one line with their count
    and the first one's time, so that they do not hide the rest."""
    found: list[tuple[float, str]] = []
    roles: list[float] = []
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        stamp, _, rest = line.partition(" [")
        level, _, message = rest.partition("] ")
        if level not in ("notice", "warning", "error", "critical"):
            continue
        try:
            at = datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            continue
        if not start <= at <= end:
            continue
        if " in term: " in message:
            roles.append(at)
        else:
            found.append((at, f"{name.split('@')[0]} {level}: {message}"))
    if roles:
        found.append((roles[0], f"{name.split('@')[0]}: {len(roles)} queue role change(s)"))
    return found
