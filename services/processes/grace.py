"""SIGTERM to `orgsync worker`: each process stops taking messages at once and has exited
within ORGSYNC_WORKER_GRACE, whatever AWS and the rate budgets are doing. Nothing is lost:
what a process does not finish, RabbitMQ delivers again (every stage is idempotent).

dramatiq alone does not: it lets its worker threads finish their messages for up to
`--worker-shutdown-timeout` (ten minutes by default) while its consumers go on taking
messages, and a discovery walk lasts minutes. The one way it offers to interrupt an actor
(`ShutdownNotifications`) raises an exception that `Retries` counts as a failure: a message
interrupted by six restarts would be dead-lettered. So, from the signal on (`Grace` wraps
dramatiq's handler in each worker process):

1. the consumers and the worker threads are told to stop: no message is taken any more, and
   what the consumers prefetched stays unacked;
2. walks stop at their next page or nap (`WALKS.stopping`, pipelines/discovery_walk.py) and
   raise `Stopping`. A thread whose actor raised it, or that is handed a message after the
   signal, abandons the message: it parks in this middleware's hook, which dramatiq runs
   before `Retries` and the stage middleware, so the message is neither acked, nor retried,
   nor counted, nor its outbox row finished;
3. the other threads finish their messages: a page of validations or tags takes seconds,
   since a call the budget cannot serve within a second or two is deferred, never slept on;
4. once every thread has finished or abandoned its message, or at the latest `HAND_BACK_S`
   before the process must be gone, the consumers' connections are closed (acks of finished
   messages go out first; RabbitMQ requeues whatever is left unacked at once), the process's
   resources are closed, and the process exits, `EXIT_MARGIN_S` before the grace period ends
   so that dramatiq's master exits within it too.

When every thread finishes its message, dramatiq's own stop runs as usual and the deadline is
only a backstop. The consumers, stopped, no longer send heartbeats: a grace period past
RabbitMQ's heartbeat timeout (60 s by default) can see a message still being worked on handed
to another worker, done twice (idempotently), never lost.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq

from orgsync.pipelines.discovery_walk import WALKS, Stopping, Walks
from orgsync.services.logs import get_logger

log = get_logger("orgsync.worker")

HAND_BACK_S = 1.0  # closing the consumers' connections and the process's resources
# dramatiq's master notices its processes have exited and exits: its log watcher, which it
# joins last, polls its pipes once a second (measured: 1.1 s from a process's exit)
EXIT_MARGIN_S = 2.0
POLL_S = 0.05
CONSUMER_STOP_S = 1.5  # dramatiq's consumers wake at least once a second (worker_timeout)


def shutdown_timeout_ms(grace_s: float) -> int:
    """dramatiq's `--worker-shutdown-timeout`: it never gives up before `Grace` does."""
    return int(grace_s * 1000)


class Grace(dramatiq.Middleware):
    """Stops a worker process within `grace_s` of SIGTERM or SIGHUP (see module). Inert until
    dramatiq's CLI boots the process: a test's StubBroker worker never arms it."""

    def __init__(
        self,
        grace_s: float,
        walks: Walks = WALKS,
        exit: Callable[[int], Any] = os._exit,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grace_s = grace_s
        self.walks = walks
        self.exit = exit
        self.clock = clock
        self.worker: dramatiq.Worker | None = None
        self.broker: dramatiq.Broker | None = None
        self.deadline: float | None = None
        self._lock = threading.Lock()
        self._abandoned: dict[int | None, Any] = {}  # thread ident: message
        self._never = threading.Event()

    # ---- dramatiq's hooks ----------------------------------------------------------------------

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        """In each worker process, main thread, once dramatiq has set its own handlers."""
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._handler(signal.getsignal(signum)))
        # the walk's Stopping is no "unhandled exception" in dramatiq's log
        logging.getLogger("dramatiq.worker.WorkerThread").addFilter(_not_stopping)

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.broker, self.worker = broker, worker

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        if self.deadline is not None:
            self._abandon(message, started=False)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if self.deadline is not None and isinstance(exception, Stopping):
            self._abandon(message, started=True)

    # ---- the stop ------------------------------------------------------------------------------

    def _handler(self, previous: Any) -> Callable[[int, Any], None]:
        def handler(signum: int, frame: Any) -> None:
            self.begin()
            if callable(previous):
                previous(signum, frame)

        return handler

    def begin(self) -> None:
        """Stop taking messages, tell the walks, and see the process out by the deadline."""
        with self._lock:
            if self.deadline is not None:
                return
            self.deadline = self.clock() + self.grace_s
        self.walks.stopping.set()
        if self.worker is not None:
            for consumer in list(self.worker.consumers.values()):
                consumer.stop()
            for thread in self.worker.workers:
                thread.stop()
        threading.Thread(target=self._see_out, name="grace", daemon=True).start()

    def _abandon(self, message: Any, *, started: bool) -> None:
        """Park this thread for good: its message stays unacked until the process is gone."""
        with self._lock:
            self._abandoned[threading.get_ident()] = message
        log.info(
            "message_handed_back",
            message_id=message.message_id,
            queue=message.queue_name,
            started=started,
        )
        while True:
            try:
                self._never.wait()
            except BaseException:  # dramatiq's TimeLimit: let through, the message would be acked
                continue

    def _see_out(self) -> None:
        assert self.deadline is not None
        started = self.deadline - self.grace_s
        exit_at = self.deadline - EXIT_MARGIN_S
        log.info("worker_stopping", grace_s=self.grace_s)
        while self.clock() < exit_at - HAND_BACK_S:
            if self._abandoned and not self._running():
                break  # only abandoned messages left: no reason to wait
            time.sleep(POLL_S)
        running = self._running()
        if running or self._abandoned:
            # dramatiq's stop still joins these threads: the consumers are ours to close
            self._bounded(self._hand_back, exit_at)
        else:  # dramatiq's stop is past its threads, closing up: it has until the exit
            while self.clock() < exit_at:
                time.sleep(POLL_S)
        with self._lock:
            abandoned = [m.message_id for m in self._abandoned.values()]
        log.info(
            "worker_stopped",
            after_s=round(self.clock() - started, 2),
            handed_back=abandoned,
            cut_short=len(running),  # threads still on a message: it is delivered again too
        )
        _flush_logs()
        self.exit(0)

    def _running(self) -> list[threading.Thread]:
        """Worker threads still alive on something other than an abandoned message."""
        threads = self.worker.workers if self.worker is not None else []
        return [t for t in threads if t.is_alive() and t.ident not in self._abandoned]

    def _hand_back(self) -> None:
        """Close the consumers (acks first; RabbitMQ requeues the rest), then the resources."""
        assert self.worker is not None and self.broker is not None and self.deadline is not None
        # each consumer stops at its next delivery, or within a second with none
        stopped_by = min(self.deadline - self.grace_s + CONSUMER_STOP_S, self.deadline)
        for consumer in list(self.worker.consumers.values()):
            consumer.join(timeout=max(0.0, stopped_by - self.clock()))
            if consumer.is_alive():
                continue  # its connection is in use: the process's exit closes its socket
            try:
                consumer.close()
            except Exception as error:
                log.warning("consumer_not_closed", queue=consumer.queue_name, error=str(error))
        self.broker.emit_after("worker_shutdown", self.worker)

    def _bounded(self, work: Callable[[], None], until: float) -> None:
        thread = threading.Thread(target=work, name="grace-hand-back", daemon=True)
        thread.start()
        thread.join(timeout=max(0.0, until - self.clock()))


def _not_stopping(record: logging.LogRecord) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], Stopping))


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
