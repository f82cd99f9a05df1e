"""The rate budget's arithmetic, pure: a token bucket whose rate adapts, and a lease's size.

The rate adapts (AIMD): a throttled answer multiplies it by `DECREASE` for everyone at once (at
most once a second, and only for a call granted since the last decrease); a run of `rate` calls
without one, lasting a second at least, adds `max(1, rate / 50)` calls/s; always between the
floor and the ceiling set per API (`ORGSYNC_AWS_RATES`, or the organization's `aws_rates`).
A new budget starts at an eighth of the ceiling (or the floor, if higher) and doubles every
such run until AWS first throttles it, then about halves (TCP's slow start): it finds an
organization's rate in seconds without first throwing the ceiling at it.

Nothing here reads a clock or a database: `store.py` keeps a `Bucket` in PostgreSQL and hands
each process a lease of its tokens; `hooks.py` puts the budget in front of boto3's calls.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from orgsync.pipelines.aws_rates import MAX_AWS_RATE, MIN_AWS_RATE

DECREASE = 0.9  # a throttled answer: the rate times this
# the first throttled answer a budget ever gets: a little under half, for AWS's bucket is empty
# by then and at exactly its rate it would stay empty
SLOW_START_DECREASE = 0.45
DECREASE_INTERVAL_S = 1.0  # AWS refills its buckets by the second: one decrease per second
START_SHARE = 8  # a new budget starts at the ceiling / this, or at the floor
RUN_S = 1.0  # a run: `rate` calls over at least this long
INCREASE_SHARE = 50  # a run without throttling: the rate plus max(1, rate / this)
BURST_S = 1.0  # tokens a budget banks, in seconds of its rate (at least one)
# A process takes this long of a budget's rate in one round trip (a lease), so a call costs a
# row lock only now and then; each leased token keeps the slot PostgreSQL gave it. A token
# whose slot passed more than STALE_S ago goes back to the bucket with the process's next round
# trip: its slot went unused, so AWS's own bucket kept that token (a process with less work
# than its lease would otherwise waste a share of everyone's rate).
LEASE_S = 0.1
STALE_S = 0.1


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
        # Rates outside MIN_AWS_RATE..MAX_AWS_RATE are refused wherever they are given now, but
        # an organization registered before the bounds may have stored one (a floor of 1e-300
        # overflowed the budget's arithmetic and failed every call): held within them here,
        # where every call reads them, instead of rewriting the stored request.
        return Limits(_bounded(chosen["floor"]), _bounded(chosen["ceiling"]))
    floor, ceiling = rates.get(api) or rates["*"]
    return Limits(floor, ceiling)


def _bounded(rate: Any) -> float:
    # stored as JSONB, which holds no NaN or infinity; a request allowed (0, 1000] before
    return min(max(float(rate), MIN_AWS_RATE), MAX_AWS_RATE)
