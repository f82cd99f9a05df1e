"""Worker processes under a supervisor, as systemd or Kubernetes would keep them running.

Each slot runs `orgsync worker` (dramatiq's master, which forks the consumer process). A
worker killed with SIGKILL takes its unacked messages with it; RabbitMQ hands them to another
consumer once it sees the connection gone. dramatiq's master then stops too, and the
supervisor starts the slot again, as a real supervisor would.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path


def children(pid: int) -> list[int]:
    """The consumer processes dramatiq's master forked (not multiprocessing's helpers)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    pids = []
    for child in map(int, text.split()):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        # a consumer runs its worker and consumer threads; helper forks run one or two
        if b"resource_tracker" not in cmdline and threads(child) > 2:
            pids.append(child)
    return pids


def threads(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads:")), 0
    )


class Supervisor:
    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        slots: int = 2,
        threads: int = 4,
        argv: list[str] | None = None,
    ) -> None:
        self.env, self.log, self.threads = env, log, threads
        self.argv = argv or [
            sys.executable,
            "-m",
            "orgsync",
            "worker",
            "--processes",
            "1",
            "--threads",
            str(threads),
        ]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * slots
        self.starts = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def __enter__(self) -> Supervisor:
        for slot in range(len(self.processes)):
            self._start(slot)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in self.processes:
            if process is None:
                continue
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def _start(self, slot: int) -> None:
        with self.log.open("ab") as out:
            self.processes[slot] = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def _watch(self) -> None:
        while not self.stopping.wait(0.2):
            with self.lock:
                for slot, process in enumerate(self.processes):
                    if process is not None and process.poll() is not None:
                        # what a killed consumer's master left behind goes with it
                        _kill_group(process.pid)
                        self._start(slot)

    def consumers(self) -> list[int]:
        """Pids of the live consumer processes (dramatiq's forked workers)."""
        with self.lock:
            return [
                pid
                for process in self.processes
                if process is not None and process.poll() is None
                for pid in children(process.pid)
            ]

    def kill_one(self, rng: random.Random) -> int | None:
        """SIGKILL one consumer process chosen at random; its pid, or None if none runs yet."""
        pids = self.consumers()
        if not pids:
            return None
        pid = rng.choice(sorted(pids))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return pid


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
