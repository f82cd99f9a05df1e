"""The budgets in PostgreSQL, and each process's lease of their tokens.

Table `aws_budgets` holds one row per scope (an organization, or `service`) and API, read and
written under the row's lock, so every worker process and machine shares it. A process takes a
tenth of a second of the rate in one round trip (a lease: its tokens keep the slots they were
given, and those it leaves unused go back with its next round trip), so that a call costs a
row lock only now and then. The arithmetic on the row is arithmetic.py's.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orgsync.pipelines.sql import load
from orgsync.services.adapters.budget import hooks
from orgsync.services.adapters.budget.arithmetic import (
    STALE_S,
    Bucket,
    Limits,
    give_back,
    lease_size,
    limits_for,
    slow_down,
    take_many,
)
from orgsync.services.adapters.db import Pool
from orgsync.services.logs import get_logger

log = get_logger("orgsync.budget")

SQL = load("orgsync.services.adapters")
SERVICE_SCOPE = "service"  # orgsync's own STS calls: AWS counts them against its account


@dataclass
class Lease:
    """The tokens one process took of one budget and has not used yet: (ticket, the
    `Budget.clock()` at which it may be sent), in ticket order, and how many to take next."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: deque[tuple[int, float]] = field(default_factory=deque)
    size: int = 1
    unused: int = 0  # tokens whose slots passed, to give back with the next round trip


class Budget:
    """The budgets in PostgreSQL; `rates` maps an API (or `*`) to its floor and ceiling.

    When PostgreSQL cannot be reached, a call goes ahead unpaced (and a throttled one is left
    to botocore's retries) rather than failing: the budget protects AWS from orgsync, it must
    never turn a database restart into failed accounts."""

    def __init__(
        self,
        pool: Pool,
        rates: dict[str, tuple[float, float]],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.rates = rates
        self.sleep = sleep
        self.clock = clock
        self._leases: dict[tuple[str, str], Lease] = {}
        self._leases_lock = threading.Lock()

    def _change(
        self, scope: str, api: str, change: Callable[[Bucket, float, Limits], Bucket]
    ) -> Bucket:
        with self.pool.connection() as conn:
            row = conn.execute(SQL["lock_budget"], (scope, api)).fetchone()
            if row is None:
                found = conn.execute(SQL["budget_rate_override"], (scope,)).fetchone()
                fresh = Bucket.new(limits_for(self.rates, api, found and found["aws_rates"]), 0.0)
                conn.execute(SQL["create_budget"], (scope, api, fresh.rate, fresh.tokens))
                row = conn.execute(SQL["lock_budget"], (scope, api)).fetchone()
            assert row is not None
            now = row.pop("now")
            limits = limits_for(self.rates, api, row.pop("override"))
            after = change(Bucket(**row), now, limits)
            conn.execute(SQL["store_budget"], {**after.__dict__, "scope": scope, "api": api})
        return after

    def _lease(self, scope: str, api: str) -> Lease:
        with self._leases_lock:
            return self._leases.setdefault((scope, api), Lease())

    def acquire(self, scope: str, api: str) -> tuple[int, float]:
        """A token for one call: its ticket and the seconds to wait before sending it. Taken
        from this process's lease, refilled with a lease's worth in one round trip."""
        lease = self._lease(scope, api)
        with lease.lock:
            now = self.clock()
            while lease.tokens and lease.tokens[0][1] < now - STALE_S:
                lease.tokens.popleft()
                lease.unused += 1
            if not lease.tokens:
                waits: list[float] = []

                def taken(bucket: Bucket, now: float, limits: Limits) -> Bucket:
                    bucket = give_back(bucket, lease.unused)
                    after, given = take_many(bucket, now, limits, lease.size)
                    waits.extend(given)
                    return after

                after = self._change(scope, api, taken)
                lease.unused = 0
                now = self.clock()
                first = after.calls - len(waits) + 1
                lease.tokens.extend((first + i, now + wait) for i, wait in enumerate(waits))
                lease.size = lease_size(after.rate)
            ticket, at = lease.tokens.popleft()
        return ticket, max(0.0, at - now)

    def give_back(self, scope: str, api: str, ticket: int, wait: float) -> None:
        """A token `acquire` gave out whose call will not be sent now: the next call takes it."""
        lease = self._lease(scope, api)
        with lease.lock:
            lease.tokens.appendleft((ticket, self.clock() + wait))

    def throttled(self, scope: str, api: str, ticket: int) -> Bucket:
        """AWS throttled call `ticket`: the rate goes down for everyone, and this process's
        leased tokens, given out at the old rate, are dropped, not given back: AWS's bucket is
        empty."""
        lease = self._lease(scope, api)
        with lease.lock:
            lease.tokens.clear()
            lease.unused = 0
            after = self._change(
                scope, api, lambda b, now, limits: slow_down(b, ticket, now, limits)
            )
            lease.size = lease_size(after.rate)
        log.info("aws_throttled", scope=scope, api=api, rate=round(after.rate, 2))
        return after

    def attach(self, client: Any, scope: str) -> Any:
        """`client` with every call paced by the budget of (`scope`, its API); returns it."""
        return hooks.attach(self, client, scope)
