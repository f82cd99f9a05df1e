"""The rate budget's arithmetic: a token bucket whose rate goes down on throttling, up on a run
of calls without it, between a floor and a ceiling."""

from __future__ import annotations

import pytest

from services.budget import DECREASE, Bucket, Limits, limits_for, slow_down, take
from services.settings import DEFAULT_AWS_RATES, SettingsError, parse_rates

LIMITS = Limits(floor=1.0, ceiling=10.0)


def calls(bucket: Bucket, n: int, now: float, limits: Limits = LIMITS) -> tuple[Bucket, float]:
    wait = 0.0
    for _ in range(n):
        bucket, wait = take(bucket, now, limits)
    return bucket, wait


def test_a_new_bucket_starts_at_the_ceiling_with_one_second_of_tokens() -> None:
    bucket = Bucket.new(LIMITS, now=100.0)
    assert (bucket.rate, bucket.tokens, bucket.at) == (10.0, 10.0, 100.0)


def test_calls_within_the_burst_go_at_once_and_the_next_waits_one_interval() -> None:
    bucket, wait = calls(Bucket.new(LIMITS, 0.0), 10, now=0.0)
    assert wait == 0.0 and bucket.tokens == pytest.approx(0.0)
    bucket, wait = take(bucket, 0.0, LIMITS)
    assert wait == pytest.approx(1 / 10.0)
    assert bucket.calls == 11


def test_callers_beyond_the_tokens_are_promised_later_slots_in_order() -> None:
    bucket = Bucket(rate=4.0, tokens=0.0, at=0.0)
    waits = []
    for _ in range(3):
        bucket, wait = take(bucket, 0.0, Limits(1.0, 4.0))
        waits.append(wait)
    assert waits == pytest.approx([0.25, 0.5, 0.75])


def test_tokens_refill_at_the_rate_and_never_beyond_the_burst() -> None:
    empty = Bucket(rate=5.0, tokens=-2.0, at=0.0)
    refilled, wait = take(empty, 1.0, Limits(1.0, 5.0))  # -2 + 5 - 1
    assert wait == 0.0 and refilled.tokens == pytest.approx(2.0)
    idle, _ = take(empty, 3600.0, Limits(1.0, 5.0))
    assert idle.tokens == pytest.approx(5.0 - 1)


def test_a_run_of_rate_calls_without_throttling_adds_one_step() -> None:
    bucket = Bucket(rate=5.0, tokens=100.0, at=0.0)
    bucket, _ = calls(bucket, 4, 0.0)
    assert bucket.rate == 5.0
    bucket, _ = take(bucket, 0.0, LIMITS)
    assert bucket.rate == pytest.approx(5.0 + LIMITS.step) and bucket.run == 0


def test_the_increase_stops_at_the_ceiling() -> None:
    bucket, _ = calls(Bucket(rate=10.0, tokens=1e9, at=0.0), 1000, 0.0)
    assert bucket.rate == 10.0


def test_a_throttled_call_multiplies_the_rate_down_once_for_the_calls_in_flight() -> None:
    bucket, _ = calls(Bucket(rate=10.0, tokens=1e9, at=0.0), 5, 0.0)  # tickets 1..5 in flight
    first = slow_down(bucket, ticket=3, limits=LIMITS)
    assert first.rate == pytest.approx(10.0 * DECREASE)
    assert (first.throttled, first.decreased_after, first.run, first.tokens) == (1, 5, 0, 0.0)
    # tickets 1..5 were granted at the old rate: their throttling is counted, not paid twice
    again = slow_down(first, ticket=5, limits=LIMITS)
    assert again.rate == first.rate and again.throttled == 2
    later, _ = take(again, 0.0, LIMITS)  # ticket 6, granted at the lower rate
    assert slow_down(later, ticket=6, limits=LIMITS).rate == pytest.approx(10.0 * DECREASE**2)


def test_the_decrease_stops_at_the_floor() -> None:
    bucket = Bucket(rate=1.1, tokens=0.0, at=0.0, calls=1)
    assert slow_down(bucket, ticket=1, limits=LIMITS).rate == 1.0


def test_a_rate_outside_new_limits_is_brought_within_them() -> None:
    bucket, _ = take(Bucket(rate=500.0, tokens=0.0, at=0.0), 0.0, LIMITS)
    assert bucket.rate <= LIMITS.ceiling


def test_limits_come_from_the_api_or_else_from_the_star() -> None:
    rates = parse_rates("ListTagsForResource=2:20,*=1:30", "X")
    assert limits_for(rates, "ListTagsForResource") == Limits(2.0, 20.0)
    assert limits_for(rates, "ListRoots") == Limits(1.0, 30.0)
    assert limits_for(parse_rates(None, "X"), "AssumeRole") == Limits(*DEFAULT_AWS_RATES["AssumeRole"])


@pytest.mark.parametrize("text", ["ListRoots=0:5", "ListRoots=5:1", "ListRoots=5", "x=1:2", "*=a:b"])
def test_bad_rates_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(SettingsError, match="API=FLOOR:CEILING"):
        parse_rates(text, "ORGSYNC_AWS_RATES")
