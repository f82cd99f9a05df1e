"""A bound on waiting for RabbitMQ's confirm: a publish not confirmed within CONFIRM_WITHIN_S has
its connection cut, and is tried again on a new connection.

A node that stops answering (paused, or cut off) keeps its TCP connections open, so a publish to
it waits for its confirm until pika's heartbeat check gives up, which is the heartbeat timeout
plus 5 s at the least: 27 s at `heartbeat=10`, well over a minute at RabbitMQ's default of 60 s.
Meanwhile the outbox rows it claimed stay locked, unsent, and the sweeper passes them by. pika
runs a BlockingConnection's own timers only between its calls, never during a publish's wait,
so the bound lives in one thread per process: it shuts the overdue connection's socket down,
which makes the waiting publish raise StreamLostError at once, with no closing handshake to
wait for; dramatiq's enqueue then retries on a new connection, and the relay leaves what it
could not send in the outbox for the sweeper. A publish sent twice is harmless: every consumer
is idempotent on the message id.

The node is not set aside for this (a new connection's handshake tells whether it answers:
adapters/nodes.py). Until the other nodes call a silent one down, RabbitMQ 3's metadata still
names the queue leaders it held, so publishes through the live nodes go unconfirmed as well.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from orgsync.services.logs import get_logger

log = get_logger(__name__)

CONFIRM_WITHIN_S = 10.0
CHECK_EVERY_S = 0.25


@dataclass(eq=False)
class Watch:
    """One publish under way: the connection it waits on, and until when."""

    connection: Any = None
    deadline: float = math.inf
    thread: int = field(default_factory=threading.get_ident)


class Watchdog:
    def __init__(self, within: float = CONFIRM_WITHIN_S) -> None:
        self.within = within
        self.cut_off = 0
        self._reset()
        # dramatiq's worker processes are forks: each watches its own publishes, in a thread
        # of its own, under a lock no thread of the parent can be holding
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self.watches: set[Watch] = set()
        self.lock = threading.Lock()
        self.running = False
        # threads whose publish was cut and has not returned yet: what pika logs on them about
        # the lost connection is expected (services/adapters/broker.py drops it)
        self.cut_threads: set[int] = set()

    @contextlib.contextmanager
    def watching(self, connection: Any = None) -> Iterator[Watch]:
        """Watch a publish, on `connection` from now on, or on the one `arm` names later."""
        watch = Watch()
        if connection is not None:
            self.arm(watch, connection)
        with self.lock:
            self._start()
            self.watches.add(watch)
        try:
            yield watch
        finally:
            with self.lock:  # once out, never cut: the connection may serve the next publish
                self.watches.discard(watch)
                self.cut_threads.discard(watch.thread)

    def arm(self, watch: Watch, connection: Any) -> None:
        """The publish waits on `connection` now, for at most `within` seconds from now."""
        watch.connection, watch.deadline = connection, time.monotonic() + self.within

    def _start(self) -> None:
        if not self.running:
            self.running = True
            threading.Thread(target=self._run, name="confirm-watchdog", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(CHECK_EVERY_S)
            now = time.monotonic()
            with self.lock:
                for watch in self.watches:
                    if now > watch.deadline:
                        watch.deadline = math.inf
                        self.cut_threads.add(watch.thread)
                        self._cut(watch.connection)

    def _cut(self, connection: Any) -> None:
        params = getattr(getattr(connection, "_impl", None), "params", None)
        sock = _socket(connection)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.cut_off += 1
        log.warning(
            "broker_confirm_overdue",
            node=f"{getattr(params, 'host', '?')}:{getattr(params, 'port', '?')}",
            waited_s=self.within,
        )


def _socket(connection: Any) -> socket.socket | None:
    """The socket under a pika BlockingConnection (pika 1.x keeps it in its transport)."""
    transport = getattr(getattr(connection, "_impl", None), "_transport", None)
    sock = getattr(transport, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


watchdog = Watchdog()
