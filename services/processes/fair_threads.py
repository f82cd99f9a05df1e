"""AWS call threads shared round-robin by the organizations whose calls wait for them.

A page's AWS calls (50 AssumeRole or ListTagsForResource) run on a stage's pool of
`ORGSYNC_AWS_CONCURRENCY` threads. In a plain thread pool they queue in arrival order, so one
organization's pages, answered slowly, would put hundreds of calls ahead of another's first.
Here each organization has its own queue of calls and a free thread takes the next call of the
next organization in turn: an organization gets at most its share of the threads while others
wait, and all of them when it is alone.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from typing import Any

_owner: ContextVar[str] = ContextVar("orgsync_calls_owner", default="")


@contextmanager
def serving(owner: str) -> Iterator[None]:
    """AWS calls made in this block take their turn as `owner`'s (an organization id)."""
    token = _owner.set(owner)
    try:
        yield
    finally:
        _owner.reset(token)


class FairThreads:
    def __init__(self, size: int, name: str) -> None:
        self.size, self.name = size, name
        self._waiting: dict[str, deque[tuple[Future[Any], Callable[[], Any]]]] = {}
        self._turns: deque[str] = deque()  # owners with calls waiting, next first
        self._ready = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def map(self, call: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """`call` on every item, as the caller's owner, each in a copy of the caller's context
        (the rate budget's lane); results in order, the first error raised."""
        owner = _owner.get()
        futures = [self._submit(owner, call, item) for item in items]
        return [future.result() for future in futures]

    def waiting(self) -> int:
        """Calls submitted and not yet started."""
        with self._ready:
            return sum(len(calls) for calls in self._waiting.values())

    def _submit(self, owner: str, call: Callable[[Any], Any], item: Any) -> Future[Any]:
        future: Future[Any] = Future()
        context = copy_context()
        with self._ready:
            if self._closed:
                raise RuntimeError(f"{self.name}: shut down")
            if owner not in self._waiting:
                self._waiting[owner] = deque()
                self._turns.append(owner)
            self._waiting[owner].append((future, lambda: context.run(call, item)))
            if len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._serve, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            self._ready.notify()
        return future

    def _next(self) -> tuple[Future[Any], Callable[[], Any]] | None:
        with self._ready:
            while not self._turns and not self._closed:
                self._ready.wait()
            if not self._turns:
                return None
            owner = self._turns.popleft()
            calls = self._waiting[owner]
            taken = calls.popleft()
            if calls:
                self._turns.append(owner)  # its next call waits for everyone else's turn
            else:
                del self._waiting[owner]
            return taken

    def _serve(self) -> None:
        while (taken := self._next()) is not None:
            future, run = taken
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(run())
            except BaseException as error:  # handed to the caller, which raises it
                future.set_exception(error)

    def shutdown(self) -> None:
        """Calls already waiting still run; new ones are refused; the threads end after them."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
