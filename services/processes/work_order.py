"""The order in which a worker process's threads take the messages it has prefetched.

dramatiq keeps them in one priority queue, by actor priority and then arrival. orgsync puts the
lane first: live work (a registration verdict, change events, `retry-failed`, an organization's
first sync) before bulk re-sync pages, whatever their stage; within a lane, actor priority
(later stages first), then arrival. So that a stream of live work never starves bulk work,
every `BULK_EVERY`-th message taken while both wait is a bulk one.

What reaches a worker's memory at all is bounded upstream: the outbox releases at most a share
of each organization's pages per queue and lane (services/adapters/relay.py), so a live page is
prefetched behind a few bulk pages at most, and this order puts it first.
"""

from __future__ import annotations

import heapq
import queue
from typing import Any

from dramatiq.common import q_name

from orgsync.pipelines.events import LIVE, REGISTRATION_QUEUE

BULK_EVERY = 4


def is_live(message: Any) -> bool:
    """A registration (someone waits for its verdict), or a page of the live lane."""
    if q_name(message.queue_name) == REGISTRATION_QUEUE:
        return True
    args: tuple[Any, ...] = tuple(getattr(message, "args", ()))
    return len(args) == 1 and isinstance(args[0], dict) and args[0].get("lane") == LIVE


class LiveFirst(queue.PriorityQueue[Any]):
    """dramatiq's work queue (its `_WorkQueueItem`s order by priority, then arrival), kept as
    two heaps: live and bulk."""

    def _init(self, maxsize: int) -> None:
        self.live: list[Any] = []
        self.bulk: list[Any] = []
        self.taken = 0

    def _qsize(self) -> int:
        return len(self.live) + len(self.bulk)

    def _put(self, item: Any) -> None:
        heapq.heappush(self.live if is_live(item.message) else self.bulk, item)

    def _get(self) -> Any:
        self.taken += 1
        if self.bulk and (not self.live or self.taken % BULK_EVERY == 0):
            return heapq.heappop(self.bulk)
        return heapq.heappop(self.live)
