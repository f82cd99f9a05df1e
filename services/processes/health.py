"""A worker's health: a watchdog in each worker process, and what `/healthz` answers.

A worker thread that dies (dramatiq lets an exception raised in its own exception handling
end the thread) leaves the process up, its consumer attached and its prefetched messages
unacked: nothing restarts it and nobody notices. Every `interval` seconds the watchdog counts
the process's live worker and consumer threads and writes them to `health-<pid>.json` in the
worker's run directory; when one has died it logs why, writes the file once more, and ends the
process with `EXIT_THREADS_DIED`. dramatiq's master then stops the other processes and exits
with that code, so the supervisor (compose's `restart: unless-stopped`, systemd, Kubernetes)
starts the worker again, and RabbitMQ hands the unacked messages to another consumer.

A process can also be alive and do nothing: every thread held by a hung AWS call, or its
prefetch held by messages that are not due. The watchdog writes how long its threads have gone
without progress while messages waited for them, and `stalled` once that reaches
ORGSYNC_WORKER_STALL_AFTER (`Stall`). Progress is a message finished (acked, retried, failed or
skipped), or a page read by a discovery walk: a walk is one message that lasts minutes, and
several at once would otherwise look stalled while working, and be restarted for ever. Messages
wait for the threads when the consumers have prefetched some no thread has taken, or, while the
process holds messages (a thread on one, or one kept until its `eta`) and nothing has progressed
for `ASK_EVERY_S`, when RabbitMQ has ready ones on the process's queues (asked then, every
`ASK_EVERY_S`: a passive declare per queue). A stalled process is left running: the supervisor
that reads /healthz decides (a restart hands its messages to another consumer).

`/healthz` (beside `/metrics`, on ORGSYNC_WORKER_METRICS_PORT) answers 200 when every worker
process has written a fresh file with all its threads alive and none stalled, 503 with the
reason otherwise.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import pika
import pika.exceptions
from dramatiq.common import q_name

from orgsync.pipelines.discovery_walk import WALKS, Walks
from orgsync.services.logs import get_logger
from orgsync.services.settings import DEFAULT_WORKER_STALL_AFTER

log = get_logger("orgsync.worker")

EXIT_THREADS_DIED = 70  # EX_SOFTWARE
INTERVAL = 2.0
ASK_EVERY_S = 10.0  # RabbitMQ's ready messages, asked at most this often, and only when quiet
Queued = Callable[[dramatiq.Broker, Iterable[str]], "int | None"]


@dataclass
class Stall:
    """The stall rule: stalled once messages have waited for the threads `after` seconds
    without a break, and no thread made progress in that time."""

    after: float
    progress_at: float
    waiting_since: float | None = None

    def progressed(self, now: float) -> None:
        self.progress_at = now

    def observe(self, waiting: int, now: float) -> float:
        """Seconds stalled so far, `waiting` being the messages waiting for a thread now."""
        if waiting <= 0:
            self.waiting_since = None
            return 0.0
        if self.waiting_since is None:
            self.waiting_since = now
        return max(0.0, now - max(self.progress_at, self.waiting_since))

    def stalled(self, stalled_s: float) -> bool:
        return stalled_s >= self.after


class Watchdog(dramatiq.Middleware):
    """Ends a worker process whose worker or consumer threads have died (see module)."""

    def __init__(
        self,
        directory: Callable[[], Path | None],
        interval: float = INTERVAL,
        exit: Callable[[int], Any] = os._exit,
        *,
        stall_after: float = DEFAULT_WORKER_STALL_AFTER,
        queued: Queued | None = None,
        walks: Walks = WALKS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.interval = interval
        self.exit = exit
        self.stopping = threading.Event()
        self.queued = queued or ready_in_rabbitmq
        self.walks = walks
        self.clock = clock
        self.stall = Stall(stall_after, clock())
        self.pages = walks.pages
        self.busy: set[int] = set()  # threads on a message
        self.broker: dramatiq.Broker | None = None
        self.asked_at = float("-inf")
        self.in_rabbitmq = 0

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.broker = broker
        self.stall.progressed(self.clock())
        threading.Thread(target=self.watch, args=(worker,), name="watchdog", daemon=True).start()

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self.busy.add(threading.get_ident())

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self.busy.discard(threading.get_ident())
        self.stall.progressed(self.clock())

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self.busy.discard(threading.get_ident())
        self.stall.progressed(self.clock())

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.stopping.set()

    def watch(self, worker: dramatiq.Worker) -> None:
        while not self.stopping.wait(self.interval):
            if not self.check(worker):
                return

    def check(self, worker: dramatiq.Worker) -> bool:
        """Writes this process's health; False (after ending the process) when threads died."""
        state = census(worker)
        healthy = state["worker_threads_alive"] == state["worker_threads"] and (
            state["consumers_alive"] == state["consumers"]
        )
        if self.stopping.is_set() or self.walks.stopping.is_set():  # threads end as they stop
            return True
        self.write({**state, "healthy": healthy, **self.progress(worker)})
        if healthy:
            return True
        log.error("worker_threads_died", exit_code=EXIT_THREADS_DIED, **state)
        self.exit(EXIT_THREADS_DIED)
        return False

    def progress(self, worker: dramatiq.Worker) -> dict[str, Any]:
        """The stall rule's facts and verdict for this process, now."""
        now = self.clock()
        if self.walks.pages != self.pages:
            self.pages = self.walks.pages
            self.stall.progressed(now)
        prefetched = worker.work_queue.qsize()
        queued = 0 if prefetched else self.queued_now(worker, now)
        stalled_s = self.stall.observe(prefetched + queued, now)
        return {
            "waiting": {"prefetched": prefetched, "in_rabbitmq": queued},
            "idle_s": round(now - self.stall.progress_at, 1),
            "stalled_s": round(stalled_s, 1),
            "stall_after_s": self.stall.after,
            "stalled": self.stall.stalled(stalled_s),
        }

    def queued_now(self, worker: dramatiq.Worker, now: float) -> int:
        """RabbitMQ's ready messages on this process's queues, when they may be waiting for it:
        it holds messages (else RabbitMQ would be delivering them) and has been quiet."""
        consumers = worker.consumers.items()
        held = self.busy or any(c.delay_queue.qsize() for q, c in consumers if q == q_name(q))
        if not held or now - self.stall.progress_at < ASK_EVERY_S:
            self.in_rabbitmq = 0
        elif now - self.asked_at >= ASK_EVERY_S and self.broker is not None:
            self.asked_at = now
            queues = [q for q in worker.consumers if q == q_name(q)]
            self.in_rabbitmq = self.queued(self.broker, queues) or 0
        return self.in_rabbitmq

    def write(self, state: dict[str, Any]) -> None:
        directory = self.directory()
        if directory is None:
            return
        path = directory / f"health-{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**state, "pid": os.getpid(), "at": time.time()}))
        tmp.replace(path)


def census(worker: dramatiq.Worker) -> dict[str, int]:
    threads = list(worker.workers)
    consumers = list(worker.consumers.values())
    return {
        "worker_threads": len(threads),
        "worker_threads_alive": sum(t.is_alive() for t in threads),
        "consumers": len(consumers),
        "consumers_alive": sum(t.is_alive() for t in consumers),
    }


def healthz(directory: Path, interval: float = INTERVAL) -> tuple[int, str, bytes]:
    """200 when every worker process reports all its threads alive, recently; else 503."""
    processes, problems = [], []
    for path in sorted(directory.glob("health-*.json")):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced
        running = _running(state.get("pid"))
        if not running and state.get("healthy"):
            path.unlink(missing_ok=True)  # stopped: dramatiq's master is stopping too
            continue
        processes.append(state)
        if not state.get("healthy"):
            ended = "" if running else ", so it ended and the worker is restarting"
            problems.append(f"process {state['pid']}: worker threads died{ended}")
        elif state.get("stalled"):
            problems.append(stall_problem(state))
        elif time.time() - state.get("at", 0) > 3 * interval + 1:
            problems.append(f"process {state['pid']}: no report for over {3 * interval + 1:g}s")
    if not processes:
        problems.append("no worker process has reported yet")
    body = {"healthy": not problems, "problems": problems, "processes": processes}
    status = 200 if not problems else 503
    return status, "application/json", (json.dumps(body) + "\n").encode()


def stall_problem(state: dict[str, Any]) -> str:
    waiting = state.get("waiting") or {}
    count = int(waiting.get("prefetched", 0)) + int(waiting.get("in_rabbitmq", 0))
    return (
        f"process {state['pid']}: stalled, no message finished and no walk page read for"
        f" {state.get('stalled_s', 0):g} s while {count} message(s) waited for its threads"
        f" (ORGSYNC_WORKER_STALL_AFTER={state.get('stall_after_s', 0):g}s)"
    )


def ready_in_rabbitmq(broker: dramatiq.Broker, queues: Iterable[str]) -> int | None:
    """Ready messages on `queues` (passive declares on a connection of its own); None when
    the broker is no RabbitMQ or does not answer."""
    parameters = getattr(broker, "parameters", None)
    if parameters is None:
        return None
    try:
        connection = pika.BlockingConnection(parameters)
    except (pika.exceptions.AMQPError, OSError):
        return None
    try:
        channel = connection.channel()
        return sum(
            int(channel.queue_declare(queue=queue, passive=True).method.message_count)
            for queue in queues
        )
    except pika.exceptions.AMQPError:
        return None
    finally:
        if connection.is_open:
            connection.close()


def _running(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
