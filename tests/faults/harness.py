"""The fault harness: one sync of a simulated organization per fault, compared with a clean one.

Everything runs against servers of the harness's own (tests/faults/servers.py) so that
RabbitMQ and PostgreSQL can be restarted mid-sync. The organization is registered once, in a
template database; each run gets a copy of it and a vhost of its own, starts a sync, lets
supervised workers carry it while the fault strikes, waits until the sync has settled, and
counts what differs from the clean run (tests/faults/state.py).
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dramatiq
import psycopg
from psycopg.conninfo import make_conninfo

from orgsync.pipelines.credentials import Keyring, generate_key
from orgsync.pipelines.events import QUEUES, OrgRegistered
from orgsync.services.adapters import db
from orgsync.services.adapters.broker import make_broker
from orgsync.services.bootstrap import House
from orgsync.services.read_models import inventory
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws, SimulatedAwsControl
from orgsync.services.testing.sample_org import OrgSpec, SampleOrg, build_organization
from orgsync.services.testing.webhook_receiver import Receiver
from orgsync.services.use_cases import registering, syncs
from tests.faults import webhooks
from tests.faults.servers import PrivatePostgres, PrivateRabbitmq
from tests.faults.state import Counts, Snapshot, compare, snapshot
from tests.faults.workers import Supervisor
from tests.support.waiting import wait_until
from tests.support.workers import worker_env

ACCOUNTS = 300
STUCK_AFTER = "10s"  # the stuck-sync bound the workers run with here
SETTLE_TIMEOUT = 180.0
KILLS = 10
STEPS = {"discovered": 1, "validated": 2, "harvested": 3, "reconciled": 4}
OUTBOX_OF_ORG = "SELECT count(*) AS n FROM outbox WHERE org_id = %s OR org_id IS NULL"


@dataclass
class OtherOrganization:
    """A second organization syncing in a run beside the harness's own, with the state it
    must end in (`reference`) and how its sync went."""

    org_id: str
    accounts: int
    reference: Snapshot
    sync_id: str = ""
    seconds: float = 0.0
    finished: bool = False
    counts: Counts | None = None


@dataclass
class Run:
    """What one fault run needs: its settings, its workers' environment, its sync."""

    name: str
    settings: Settings
    env: dict[str, str]
    org_id: str
    sync_id: str = ""
    log: Path = Path()
    notes: list[str] = field(default_factory=list)
    house: House | None = None
    started: float = 0.0  # when the timed part began (time.monotonic)
    synced_s: float | None = None  # when the organization's sync was first seen finished
    other: OtherOrganization | None = None

    def mark_synced(self) -> None:
        if self.synced_s is None:
            self.synced_s = time.monotonic() - self.started

    def progress(self) -> dict[str, Any]:
        assert self.house is not None
        return syncs.progress(self.house, self.sync_id)

    def reconciled(self) -> int:
        return int(self.progress()["stages"].get("reconciled", 0))

    def steps(self) -> int:
        """Stage steps the sync's accounts have taken so far (4 per account at the end)."""
        stages = self.progress()["stages"]
        return sum(STEPS.get(stage, 0) * n for stage, n in stages.items())

    def finished(self) -> bool:
        return inventory.sync_finished(self.progress())


@dataclass
class Result:
    name: str
    seconds: float
    counts: Counts
    notes: list[str]
    redrives: int
    worker_starts: int
    synced_s: float | None = None
    other: OtherOrganization | None = None


# A fault runs alongside the sync: it gets the run and its supervised workers, and returns
# once it has struck (the harness then waits for the sync to settle).
Fault = Callable[["Harness", Run, Supervisor], None]
# What a run needs before its timed part (another organization registered), with workers of
# its own that stop before the timed part starts.
Before = Callable[["Harness", Run], None]


class Harness:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.base = Path(tempfile.mkdtemp(prefix="orgsync-faults-"))
        self.base.chmod(0o755)  # PostgreSQL runs as its own user below it
        self.postgres = PrivatePostgres(self.base)
        self.rabbitmq = PrivateRabbitmq(self.base)
        self.aws = SimulatedAws()
        self.keyring = Keyring([generate_key("faults")])
        self.template = "faults_template"
        self.org: SampleOrg | None = None
        self.org_id = ""
        self.reference: Snapshot | None = None
        self.receiver = Receiver()  # every run's webhook (tests/faults/webhooks.py)
        self.webhook_reference: webhooks.Tally | None = None

    # ---- setup ---------------------------------------------------------------------------

    def __enter__(self) -> Harness:
        try:
            self._setup()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _setup(self) -> None:
        rabbit = threading.Thread(target=self.rabbitmq.init)  # the slowest: start it first
        rabbit.start()
        self.receiver.start()
        try:
            self.postgres.init()
            self.aws.start()
            # moto's backends are global to the process: other tests' organizations go first
            SimulatedAwsControl(self.aws.endpoint_url).reset()
            self.org = build_organization(
                self.aws.endpoint_url, OrgSpec(accounts=ACCOUNTS, suspended=6, excluded=6)
            )
        finally:
            rabbit.join()
        if not self.rabbitmq.ready():
            raise RuntimeError(f"RabbitMQ did not start; see {self.rabbitmq.dir / 'log'}")
        self._register()

    def __exit__(self, *exc: object) -> None:
        if self.aws.endpoint_url:
            with contextlib.suppress(Exception):  # leave moto as empty as we found it
                SimulatedAwsControl(self.aws.endpoint_url).reset()
        self.aws.stop()
        self.receiver.stop()
        self.rabbitmq.close()
        self.postgres.close()
        if not os.environ.get("ORGSYNC_FAULTS_KEEP"):
            subprocess.run(["rm", "-rf", str(self.base)], check=False)

    def database_url(self, name: str) -> str:
        return make_conninfo(self.postgres.url, dbname=name)

    def settings(self, database: str, vhost: str) -> Settings:
        return Settings(
            database_url=self.database_url(database),
            broker_url=self.rabbitmq.add_vhost(vhost),
            encryption_keys=self.keyring.format(),
        )

    def worker_env(self, settings: Settings) -> dict[str, str]:
        return dict(
            worker_env(settings, self.aws.endpoint_url),
            ORGSYNC_STUCK_AFTER=STUCK_AFTER,
            ORGSYNC_WORKER_METRICS_PORT="0",
            ORGSYNC_SYNC_INTERVAL="1h",
            dramatiq_queue_prefetch="4",
            **webhooks.ENV,
        )

    def _register(self) -> None:
        """The organization, registered once through the real registrar, in the template."""
        assert self.org is not None
        db.migrate(self.database_url(self.template))
        settings = self.settings(self.template, "setup")
        request = self.registration_request(self.org, "faults")
        argv = [sys.executable, "-m", "orgsync", "worker", "--stages", "registration"]
        with (
            House(settings) as house,
            Supervisor(self.worker_env(settings), self.base / "setup.log", slots=1, argv=argv),
        ):
            registering.submit(house, request)
            verdict = registering.wait_verdict(house, request["request_id"], 120)
        assert verdict.accepted and verdict.org_id, verdict.reasons
        self.org_id = verdict.org_id
        # The registration's first sync went to the setup vhost, which nothing consumes: its
        # page stays in the outbox as in flight until finished, and must not be in every run's
        # copy of the template (each run starts its own sync).
        with psycopg.connect(self.database_url(self.template), autocommit=True) as conn:
            conn.execute("DELETE FROM outbox")

    def registration_request(self, org: SampleOrg, nickname: str) -> dict[str, Any]:
        return {
            "request_id": f"faults-{uuid.uuid4().hex[:8]}",
            "nickname": nickname,
            "org_role_arn": org.org_role_arn,
            "org_session_name": "orgsync-faults",
            "org_session_duration": 3600,
            "member_role_name": org.member_role_name,
            "member_session_name": "orgsync-faults-member",
            "member_session_duration": 900,
            "exclude_prefixes": ["sandbox-"],
            "auto_badge": True,
        }

    # ---- one run -------------------------------------------------------------------------

    def run(
        self,
        name: str,
        fault: Fault | None = None,
        before: Before | None = None,
        mode: str = "full",
        **supervisor: Any,
    ) -> Result:
        database = f"faults_{name.replace('-', '_')}"
        with psycopg.connect(self.postgres.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}" TEMPLATE "{self.template}"')
        settings = self.settings(database, name)
        run = Run(name, settings, self.worker_env(settings), self.org_id)
        run.log = self.base / f"{name}.log"
        webhooks.prepare(settings, self.keyring, self.receiver)
        with House(settings) as run.house:
            if before is not None:
                before(self, run)
            started = run.started = time.monotonic()
            run.sync_id = syncs.sync(run.house, self.org_id, trigger=f"faults:{name}", mode=mode)
            with Supervisor(run.env, run.log, **supervisor) as workers:
                if fault is not None:
                    fault(self, run, workers)
                settled = self.settle(run) and webhooks.settle(settings)
                starts = workers.starts
        seconds = time.monotonic() - started
        with db.connect(settings.database_url) as conn:
            state = snapshot(conn, self.org_id, run.sync_id)
            row = conn.execute(
                "SELECT redrives FROM syncs WHERE sync_id = %s", (run.sync_id,)
            ).fetchone()
        delivered = webhooks.tally(settings, self.org_id, self.receiver)
        run.notes.append(delivered.note())
        if not settled:
            run.notes.append(f"did not settle in {SETTLE_TIMEOUT:.0f} s")
        if self.reference is None:
            self.reference = state
        counts = compare(self.reference, state)
        self.webhook_reference = self.webhook_reference or delivered
        webhooks.compare(self.webhook_reference, delivered, counts, first_sync=mode == "full")
        if not settled and counts.clean:
            counts.lost += 1  # never report a run that did not finish as clean
        redrives = row["redrives"] if row else 0
        return Result(name, seconds, counts, run.notes, redrives, starts, run.synced_s, run.other)

    def settle(self, run: Run) -> bool:
        """Until the sync has finished and no event of the organization waits in the outbox
        (another organization's, in a run that has one, are the fault's business)."""

        def settled() -> bool | None:
            try:
                with db.connect(run.settings.database_url) as conn:
                    waiting = conn.execute(OUTBOX_OF_ORG, (run.org_id,)).fetchone()
                    done = inventory.sync_finished(inventory.sync_progress(conn, run.sync_id))
            except Exception:  # the database may be restarting
                return None
            if done:
                run.mark_synced()
            return True if done and waiting and waiting["n"] == 0 else None

        try:
            wait_until(settled, SETTLE_TIMEOUT, "settled", interval=0.2)
        except AssertionError:
            return False
        return True


def publish_again(settings: Settings, org_id: str, sync_id: str) -> None:
    broker = make_broker(settings.broker_url)
    try:
        event = OrgRegistered(org_id=org_id, sync_id=sync_id)
        broker.enqueue(
            dramatiq.Message(
                queue_name=event.queue,
                actor_name=event.actor,
                args=(event.payload(),),
                kwargs={},
                options={},
                message_id=event.message_id,
            )
        )
    finally:
        broker.close()


def wait_reconciled(run: Run, fraction: float, timeout: float = SETTLE_TIMEOUT) -> int:
    """Until `fraction` of the organization's accounts are through; returns how many are."""
    target = int(ACCOUNTS * fraction)
    wait_until(lambda: run.reconciled() >= target, timeout, f"{run.name}: {target} reconciled")
    return run.reconciled()


# ---- the faults ------------------------------------------------------------------------------


def kill_workers(harness: Harness, run: Run, workers: Supervisor) -> None:
    """SIGKILL a consumer process KILLS times, each at a random moment of a sync.

    A moment is a random amount of progress since the last kill (stage steps taken by the
    sync's accounts), then a random fraction of a second: kills land while work is in flight,
    never on the last live consumer, and the sync still moves between them. A sync that ends
    before the last kill (a fast machine) is followed by another, so every kill is mid-sync;
    the state is then compared after the last one.
    """
    rng = random.Random(harness.seed)
    kills, started = 0, 1
    time.sleep(rng.uniform(0.5, 3.0))  # a random moment (the fault); the first may catch the walk
    while kills < KILLS:
        if run.finished():
            assert run.house is not None
            run.sync_id = syncs.sync(run.house, run.org_id, trigger=f"faults:{run.name}")
            started += 1
        if len(workers.consumers()) >= 2 and workers.kill_one(rng) is not None:
            kills += 1
        target = run.steps() + rng.randint(3, 25)
        wait_until(
            lambda target=target: run.steps() >= target or run.finished(),
            SETTLE_TIMEOUT,
            f"{run.name}: {target} stage steps or the sync's end",
            interval=0.2,  # each check counts the sync's stage marks in PostgreSQL
        )
        time.sleep(rng.uniform(0.0, 1.0))  # a random moment: when a kill lands is the fault
    run.notes.append(f"{kills} kill -9 in {started} sync(s) (seed {harness.seed})")


def restart_rabbitmq(harness: Harness, run: Run, workers: Supervisor) -> None:
    at = wait_reconciled(run, random.Random(harness.seed).uniform(0.1, 0.4))
    started = time.monotonic()
    harness.rabbitmq.restart(down_for=2.0)
    run.notes.append(f"restarted at {at} reconciled, down {time.monotonic() - started:.0f} s")


def restart_postgres(harness: Harness, run: Run, workers: Supervisor) -> None:
    scheduler_log = harness.base / f"{run.name}-scheduler.log"
    with scheduler_log.open("w") as out:
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "orgsync", "scheduler"],
            env=run.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: "scheduler_leading" in scheduler_log.read_text(), 60, "the scheduler leading"
        )
        at = wait_reconciled(run, random.Random(harness.seed).uniform(0.1, 0.4))
        started = time.monotonic()
        harness.postgres.restart(down_for=3.0)
        run.notes.append(f"restarted at {at} reconciled, down {time.monotonic() - started:.0f} s")
        wait_until(
            lambda: scheduler_log.read_text().count("scheduler_leading") >= 2,
            60,
            "the scheduler leading again after PostgreSQL restarted",
        )
        run.notes.append("scheduler reconnected")
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)


def deliver_twice(harness: Harness, run: Run, workers: Supervisor) -> None:
    publish_again(run.settings, run.org_id, run.sync_id)
    run.notes.append("every message published twice")


THROTTLE_RATES = {"*": [20, 10], "AssumeRole": [20, 10]}  # calls/s and burst, per API


def throttle(harness: Harness, run: Run, workers: Supervisor) -> None:
    run.notes.append("AWS throttles every API beyond 20 calls/s")


@contextlib.contextmanager
def throttled(harness: Harness) -> Iterator[None]:
    """AWS throttling by rate, as it does: the workers' shared budget has to find the rate."""
    harness.aws.faults.update(rates=THROTTLE_RATES)
    try:
        yield
    finally:
        harness.aws.faults.reset()


def twice_argv(threads: int = 4) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dramatiq",
        "orgsync.services.processes.worker",
        "tests.faults.twice",
        "--skip-logging",
        "--processes",
        "1",
        "--threads",
        str(threads),
        "--queues",
        *QUEUES,
    ]


def failures(results: list[Result]) -> list[str]:
    """Each run that lost, duplicated or got something wrong, with its counts, first examples
    and notes: the assertion's message, which is what a CI log's last lines show."""
    return [
        f"{r.name}: {r.counts.lost} lost, {r.counts.duplicated} duplicated, {r.counts.wrong} wrong"
        f" ({'; '.join(r.counts.examples[:5] + r.notes)})"
        for r in results
        if not r.counts.clean
    ]


def table(results: list[Result], seed: int) -> str:
    header = (
        f"{'fault':<18} {'seconds':>7} {'sync s':>6} {'lost':>5} {'duplicated':>10} {'wrong':>6}"
        f" {'re-drives':>9} {'worker starts':>13}  notes"
    )
    lines = [f"fault harness: {ACCOUNTS}-account organization, seed {seed}", header]
    lines.append("-" * len(header))
    for r in results:
        synced = "-" if r.synced_s is None else f"{r.synced_s:.1f}"
        lines.append(
            f"{r.name:<18} {r.seconds:>7.1f} {synced:>6} {r.counts.lost:>5}"
            f" {r.counts.duplicated:>10} {r.counts.wrong:>6} {r.redrives:>9}"
            f" {r.worker_starts:>13}  {'; '.join(r.notes)}"
        )
    for r in results:
        for example in r.counts.examples[:5]:
            lines.append(f"  {r.name}: {example}")
    return "\n".join(lines)
