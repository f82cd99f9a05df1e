"""One AWS rate budget per (organization, API), shared by every worker process and machine.

AWS Organizations throttles by request rate, counts every caller of an organization together,
and publishes no figures. Each process retrying on its own only adds throttling, so every call
first takes a token from a bucket kept in PostgreSQL (table `aws_budgets`, one row per scope
and API, read and written under the row's lock): when none is left, the call is promised the
next free slot and sleeps until then, instead of being sent to be throttled.

The rate adapts (AIMD): a throttled answer multiplies it by `DECREASE` for everyone at once (at
most once a second, and only for a call granted since the last decrease); a run of `rate` calls
without one, lasting a second at least, adds `max(1, rate / 50)` calls/s; always between the
floor and the ceiling set per API (`ORGSYNC_AWS_RATES`, or the organization's `aws_rates`,
read with the row so that a change holds from the next call). A new budget starts at an eighth
of the ceiling (or the floor, if higher) and doubles every such run until AWS first throttles it,
then about halves (TCP's slow start): it finds an organization's rate in seconds without first
throwing the ceiling at it. The arithmetic is pure (`take`, `slow_down`); `Budget` keeps it in
PostgreSQL, where each process takes a tenth of a second of the rate in one round trip (a
lease: its tokens keep the slots they were given, and those it leaves unused go back), so that
a call costs a row lock only now and then; `attach` hooks it into a boto3 client through
botocore's events, so no stage knows about it:

- `before-call`: wait for a token (the ticket is kept in the request's context);
- `needs-retry`, first of its handlers: a throttled answer lowers the rate and is retried after
  a budget wait, for up to `PATIENCE_S`; botocore's own retry handler (AWS_RETRY_MODE,
  AWS_MAX_ATTEMPTS) then only sees what is not throttling (5xx, network errors), and a
  throttled call that outlasts the patience.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from orgsync.pipelines.aws_errors import is_throttling
from orgsync.services.logs import get_logger

log = get_logger("orgsync.budget")

DECREASE = 0.9  # a throttled answer: the rate times this
# the first throttled answer a budget ever gets: a little under half, for AWS's bucket is empty
# by then and at exactly its rate it would stay empty
SLOW_START_DECREASE = 0.45
DECREASE_INTERVAL_S = 1.0  # AWS refills its buckets by the second: one decrease per second
START_SHARE = 8  # a new budget starts at the ceiling / this, or at the floor
RUN_S = 1.0  # a run: `rate` calls over at least this long
INCREASE_SHARE = 50  # a run without throttling: the rate plus max(1, rate / this)
BURST_S = 1.0  # tokens a budget banks, in seconds of its rate (at least one)
PATIENCE_S = 300.0  # one call's throttled retries, waits included, before its error shows
# A process takes this long of a budget's rate in one round trip (a lease), so a call costs a
# row lock only now and then; each leased token keeps the slot PostgreSQL gave it. A token
# whose slot passed more than STALE_S ago goes back to the bucket with the process's next round
# trip: its slot went unused, so AWS's own bucket kept that token (a process with less work
# than its lease would otherwise waste a share of everyone's rate).
LEASE_S = 0.1
STALE_S = 0.1
SERVICE_SCOPE = "service"  # orgsync's own STS calls: AWS counts them against its account
_TICKET = "orgsync_budget_ticket"
_STARTED = "orgsync_budget_started"


@dataclass(frozen=True)
class Limits:
    floor: float
    ceiling: float


@dataclass(frozen=True)
class Bucket:
    """One budget's state: `tokens` at time `at` (seconds, PostgreSQL's clock), `calls` handed
    out so far, `run` of them since the rate last changed, and the call number after which
    (and the time at which) the last decrease happened; none yet is the slow start."""

    rate: float
    tokens: float
    at: float
    run: int = 0
    calls: int = 0
    throttled: int = 0
    decreased_after: int = 0
    decreased_at: float = 0.0
    run_since: float = 0.0  # when the run began

    @classmethod
    def new(cls, limits: Limits, now: float) -> Bucket:
        rate = max(limits.floor, limits.ceiling / START_SHARE)
        return cls(rate=rate, tokens=burst(rate), at=now, run_since=now)

    @property
    def slow_start(self) -> bool:
        return self.decreased_after == 0


def burst(rate: float) -> float:
    return max(1.0, rate * BURST_S)


def take(bucket: Bucket, now: float, limits: Limits) -> tuple[Bucket, float]:
    """One token: the bucket after it, and how long the caller waits before its call (0 when a
    token was there). A run of `rate` calls without a throttle, lasting a second or more (calls
    spent from the burst in less prove nothing about the rate), raises the rate: doubles it in
    the slow start, else adds max(1, rate / INCREASE_SHARE)."""
    rate = min(max(bucket.rate, limits.floor), limits.ceiling)
    elapsed = max(0.0, now - bucket.at)
    tokens = min(burst(rate), bucket.tokens + rate * elapsed) - 1
    run, run_since = bucket.run + 1, bucket.run_since
    if run >= rate and now - run_since >= RUN_S:
        grown = rate * 2 if bucket.slow_start else rate + max(1.0, rate / INCREASE_SHARE)
        rate, run, run_since = min(limits.ceiling, grown), 0, now
    after = replace(
        bucket,
        rate=rate,
        tokens=tokens,
        at=now,
        run=run,
        run_since=run_since,
        calls=bucket.calls + 1,
    )
    return after, max(0.0, -tokens / rate)


def take_many(bucket: Bucket, now: float, limits: Limits, count: int) -> tuple[Bucket, list[float]]:
    """`count` tokens at once: the bucket after them and each one's wait, in ticket order."""
    waits = []
    for _ in range(count):
        bucket, wait = take(bucket, now, limits)
        waits.append(wait)
    return bucket, waits


def give_back(bucket: Bucket, unused: int) -> Bucket:
    """`unused` tokens whose slots passed unused, banked again (`take` caps the bank)."""
    return replace(bucket, tokens=bucket.tokens + unused) if unused else bucket


def lease_size(rate: float) -> int:
    return max(1, int(rate * LEASE_S))


def slow_down(bucket: Bucket, ticket: int, now: float, limits: Limits) -> Bucket:
    """AWS throttled call number `ticket` at `now`. Only a call granted after the last decrease,
    a second or more after it, lowers the rate (and drops the banked tokens): the calls in
    flight when AWS's bucket ran dry are throttled together, and count once."""
    # the run is broken
    throttled = replace(bucket, throttled=bucket.throttled + 1, run=0, run_since=now)
    if ticket <= bucket.decreased_after or now - bucket.decreased_at < DECREASE_INTERVAL_S:
        return throttled
    factor = SLOW_START_DECREASE if bucket.slow_start else DECREASE
    return replace(
        throttled,
        rate=max(limits.floor, bucket.rate * factor),
        tokens=min(bucket.tokens, 0.0),  # AWS's bucket is empty: banked tokens would be wasted
        run=0,
        decreased_after=max(1, bucket.calls),
        decreased_at=now,
    )


def limits_for(
    rates: dict[str, tuple[float, float]], api: str, override: dict[str, Any] | None = None
) -> Limits:
    """The floor and ceiling of `api`: the organization's override (`aws_rates` of its
    registration) for the API, else for `*`, else the setting's for the API, else for `*`."""
    override = override or {}
    chosen = override.get(api) or override.get("*")
    if chosen:
        return Limits(float(chosen["floor"]), float(chosen["ceiling"]))
    floor, ceiling = rates.get(api) or rates["*"]
    return Limits(floor, ceiling)


# the organization's override is read with the row, so a changed one holds from the next call
LOCK = """
SELECT b.rate, b.tokens, b.refilled_at AS at, b.run, b.run_since, b.calls, b.throttled,
       b.decreased_after, b.decreased_at, o.aws_rates AS override,
       extract(epoch FROM clock_timestamp())::float8 AS now
FROM aws_budgets b LEFT JOIN organizations o ON o.org_id = b.scope
WHERE b.scope = %s AND b.api = %s FOR UPDATE OF b
"""
OVERRIDE = "SELECT aws_rates FROM organizations WHERE org_id = %s"
CREATE = """
INSERT INTO aws_budgets (scope, api, rate, tokens, refilled_at, run_since)
SELECT %s, %s, %s, %s, now, now FROM extract(epoch FROM clock_timestamp()) AS now
ON CONFLICT DO NOTHING
"""
STORE = """
UPDATE aws_budgets SET rate = %(rate)s, tokens = %(tokens)s, refilled_at = %(at)s, run = %(run)s,
    run_since = %(run_since)s,
    calls = %(calls)s, throttled = %(throttled)s, decreased_after = %(decreased_after)s,
    decreased_at = %(decreased_at)s,
    last_throttled_at = CASE WHEN %(throttled)s > throttled THEN now() ELSE last_throttled_at END
WHERE scope = %(scope)s AND api = %(api)s
"""


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
        pool: ConnectionPool,
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
            row = conn.execute(LOCK, (scope, api)).fetchone()
            if row is None:
                found = conn.execute(OVERRIDE, (scope,)).fetchone()
                fresh = Bucket.new(limits_for(self.rates, api, found and found["aws_rates"]), 0.0)
                conn.execute(CREATE, (scope, api, fresh.rate, fresh.tokens))
                row = conn.execute(LOCK, (scope, api)).fetchone()
            assert row is not None
            now = row.pop("now")
            limits = limits_for(self.rates, api, row.pop("override"))
            after = change(Bucket(**row), now, limits)
            conn.execute(STORE, {**after.__dict__, "scope": scope, "api": api})
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
        service = client.meta.service_model.service_id.hyphenize()
        events = client.meta.events
        events.register(f"before-call.{service}", self._before_call(scope))
        events.register_first(f"needs-retry.{service}", self._needs_retry(scope))
        return client

    def _before_call(self, scope: str) -> Callable[..., None]:
        def before_call(model: Any, context: dict[str, Any], **_: Any) -> None:
            context[_STARTED] = time.monotonic()
            try:
                ticket, wait = self.acquire(scope, model.name)
            except psycopg.Error as error:
                log.warning("aws_budget_unavailable", scope=scope, error=str(error)[:300])
                return
            context[_TICKET] = ticket
            if wait > 0:
                self.sleep(wait)

        return before_call

    def _needs_retry(self, scope: str) -> Callable[..., float | None]:
        def needs_retry(
            response: Any, operation: Any, request_dict: dict[str, Any], **_: Any
        ) -> float | None:
            if response is None:
                return None  # a network error: botocore's own retries decide
            status = getattr(response[0], "status_code", None)
            code = str((response[1] or {}).get("Error", {}).get("Code", ""))
            if not is_throttling(code, status):
                return None
            context = request_dict.setdefault("context", {})
            if time.monotonic() - context.get(_STARTED, time.monotonic()) > PATIENCE_S:
                return None
            try:
                self.throttled(scope, operation.name, int(context.get(_TICKET, 0)))
                context[_TICKET], wait = self.acquire(scope, operation.name)
            except psycopg.Error as error:
                log.warning("aws_budget_unavailable", scope=scope, error=str(error)[:300])
                return None  # botocore's own retries decide
            return wait

        return needs_retry
