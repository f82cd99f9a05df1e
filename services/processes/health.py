"""A worker's health: a watchdog in each worker process, and what `/healthz` answers.

A worker thread that dies (dramatiq lets an exception raised in its own exception handling
end the thread) leaves the process up, its consumer attached and its prefetched messages
unacked: nothing restarts it and nobody notices. Every `interval` seconds the watchdog counts
the process's live worker and consumer threads and writes them to `health-<pid>.json` in the
worker's run directory; when one has died it logs why, writes the file once more, and ends the
process with `EXIT_THREADS_DIED`. dramatiq's master then stops the other processes and exits
with that code, so the supervisor (compose's `restart: unless-stopped`, systemd, Kubernetes)
starts the worker again, and RabbitMQ hands the unacked messages to another consumer.

`/healthz` (beside `/metrics`, on ORGSYNC_WORKER_METRICS_PORT) answers 200 when every worker
process has written a fresh file with all its threads alive, 503 with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dramatiq

from orgsync.services.logs import get_logger

log = get_logger("orgsync.worker")

EXIT_THREADS_DIED = 70  # EX_SOFTWARE
INTERVAL = 2.0


class Watchdog(dramatiq.Middleware):
    """Ends a worker process whose worker or consumer threads have died (see module)."""

    def __init__(
        self,
        directory: Callable[[], Path | None],
        interval: float = INTERVAL,
        exit: Callable[[int], Any] = os._exit,
    ) -> None:
        self.directory = directory
        self.interval = interval
        self.exit = exit
        self.stopping = threading.Event()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        threading.Thread(target=self.watch, args=(worker,), name="watchdog", daemon=True).start()

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
        if self.stopping.is_set():
            return True
        self.write({**state, "healthy": healthy})
        if healthy:
            return True
        log.error("worker_threads_died", exit_code=EXIT_THREADS_DIED, **state)
        self.exit(EXIT_THREADS_DIED)
        return False

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
        elif time.time() - state.get("at", 0) > 3 * interval + 1:
            problems.append(f"process {state['pid']}: no report for over {3 * interval + 1:g}s")
    if not processes:
        problems.append("no worker process has reported yet")
    body = {"healthy": not problems, "problems": problems, "processes": processes}
    status = 200 if not problems else 503
    return status, "application/json", (json.dumps(body) + "\n").encode()


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
