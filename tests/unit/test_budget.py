"""The rate budget's arithmetic: a token bucket whose rate goes down on throttling, up on a run
of calls without it, between a floor and a ceiling."""

from __future__ import annotations

import pytest

from orgsync.services.adapters.budget.arithmetic import (
    DECREASE,
    DECREASE_INTERVAL_S,
    SLOW_START_DECREASE,
    Bucket,
    Limits,
    give_back,
    lease_size,
    limits_for,
    slow_down,
    take,
    take_many,
)
from orgsync.services.settings import DEFAULT_AWS_RATES, SettingsError, parse_rates

LIMITS = Limits(floor=1.0, ceiling=100.0)


def calls(bucket: Bucket, n: int, now: float, limits: Limits = LIMITS) -> tuple[Bucket, float]:
    wait = 0.0
    for _ in range(n):
        bucket, wait = take(bucket, now, limits)
    return bucket, wait


def steady(rate: float, **fields: float) -> Bucket:
    """A budget past its slow start: it was throttled once, long ago."""
    values = {"tokens": 1e9, "at": 0.0, "calls": 1, "decreased_after": 1, "decreased_at": -1e6}
    return Bucket(rate=rate, **{**values, **fields})  # type: ignore[arg-type]


def test_a_new_bucket_starts_at_an_eighth_of_the_ceiling_or_the_floor_in_its_slow_start() -> None:
    bucket = Bucket.new(Limits(4.0, 100.0), now=100.0)
    assert (bucket.rate, bucket.tokens, bucket.at, bucket.slow_start) == (12.5, 12.5, 100.0, True)
    assert Bucket.new(Limits(20.0, 100.0), now=0.0).rate == 20.0


def test_calls_within_the_burst_go_at_once_and_the_next_waits_one_interval() -> None:
    limits = Limits(10.0, 10.0)
    bucket, wait = calls(Bucket.new(limits, 0.0), 10, now=0.0, limits=limits)
    assert wait == 0.0 and bucket.tokens == pytest.approx(0.0)
    bucket, wait = take(bucket, 0.0, limits)
    assert wait == pytest.approx(1 / 10.0) and bucket.calls == 11


def test_callers_beyond_the_tokens_are_promised_later_slots_in_order() -> None:
    bucket = steady(4.0, tokens=0.0)
    waits = []
    for _ in range(3):
        bucket, wait = take(bucket, 0.0, Limits(1.0, 4.0))
        waits.append(wait)
    assert waits == pytest.approx([0.25, 0.5, 0.75])


def test_tokens_refill_at_the_rate_and_never_beyond_one_second_of_them() -> None:
    empty = steady(5.0, tokens=-2.0)
    refilled, wait = take(empty, 1.0, LIMITS)  # -2 + 5 - 1
    assert wait == 0.0 and refilled.tokens == pytest.approx(2.0)
    idle, _ = take(empty, 3600.0, LIMITS)
    assert idle.tokens == pytest.approx(5.0 - 1)


def test_the_slow_start_doubles_the_rate_after_each_run_of_rate_calls() -> None:
    bucket = Bucket.new(Limits(2.0, 16.0), 0.0)
    bucket, _ = calls(bucket, 2, 1.0)
    assert bucket.rate == 4.0
    bucket, _ = calls(bucket, 4, 2.0)
    assert bucket.rate == 8.0 and bucket.run == 0


def test_a_run_spent_from_the_burst_in_less_than_a_second_raises_nothing() -> None:
    bucket, _ = calls(Bucket.new(Limits(2.0, 16.0), 0.0), 10, 0.5)
    assert bucket.rate == 2.0 and bucket.run == 10
    bucket, _ = take(bucket, 1.0, LIMITS)  # the run has now lasted a second
    assert bucket.rate == 4.0


def test_after_the_slow_start_a_run_without_throttling_adds_one_call_or_two_percent() -> None:
    bucket, _ = calls(steady(5.0), 5, 1.0)
    assert bucket.rate == 6.0
    bucket, _ = calls(steady(80.0), 80, 1.0)
    assert bucket.rate == pytest.approx(80.0 + 80.0 / 50)


def test_the_increase_stops_at_the_ceiling() -> None:
    bucket, _ = calls(steady(10.0), 1000, 100.0, Limits(1.0, 10.0))
    assert bucket.rate == 10.0


def test_the_first_throttle_ends_the_slow_start_by_about_halving_the_rate() -> None:
    bucket, _ = calls(Bucket.new(Limits(64.0, 100.0), 0.0), 3, 0.0, Limits(64.0, 100.0))
    after = slow_down(bucket, ticket=3, now=5.0, limits=LIMITS)
    assert after.rate == 64.0 * SLOW_START_DECREASE and not after.slow_start
    assert (after.throttled, after.decreased_after, after.decreased_at) == (1, 3, 5.0)
    assert after.tokens == 0.0 and after.run == 0  # AWS's bucket is dry: nothing banked


def test_a_throttle_lowers_the_rate_once_for_the_calls_in_flight_and_once_a_second() -> None:
    bucket, _ = calls(steady(50.0), 5, 0.0)  # tickets 2..6 in flight
    first = slow_down(bucket, ticket=4, now=10.0, limits=LIMITS)
    assert first.rate == pytest.approx(50.0 * DECREASE) and first.decreased_after == 6
    # granted at the old rate: counted, not paid for twice
    again = slow_down(first, ticket=6, now=12.0, limits=LIMITS)
    assert again.rate == first.rate and again.throttled == 2
    later, _ = take(again, 10.0, LIMITS)  # ticket 7, at the lower rate
    too_soon = slow_down(later, ticket=7, now=10.0 + DECREASE_INTERVAL_S / 2, limits=LIMITS)
    assert too_soon.rate == first.rate
    in_time = slow_down(later, ticket=7, now=10.0 + DECREASE_INTERVAL_S, limits=LIMITS)
    assert in_time.rate == pytest.approx(50.0 * DECREASE**2)


def test_the_decrease_stops_at_the_floor() -> None:
    assert slow_down(steady(1.05, calls=9), ticket=9, now=0.0, limits=LIMITS).rate == 1.0


def test_a_rate_outside_new_limits_is_brought_within_them() -> None:
    bucket, _ = take(steady(500.0, tokens=0.0), 0.0, Limits(1.0, 10.0))
    assert bucket.rate <= 10.0


def test_limits_come_from_the_api_or_else_from_the_star() -> None:
    rates = parse_rates("ListTagsForResource=2:20,*=1:30", "X")
    assert limits_for(rates, "ListTagsForResource") == Limits(2.0, 20.0)
    assert limits_for(rates, "ListRoots") == Limits(1.0, 30.0)
    default = limits_for(parse_rates(None, "X"), "AssumeRole")
    assert default == Limits(*DEFAULT_AWS_RATES["AssumeRole"])


def test_an_organizations_override_wins_for_the_api_then_for_the_star() -> None:
    rates = parse_rates("ListTagsForResource=2:20,*=1:30", "X")
    star = {"*": {"floor": 0.5, "ceiling": 5}}
    assert limits_for(rates, "ListTagsForResource", star) == Limits(0.5, 5.0)
    both = {**star, "ListRoots": {"floor": 1, "ceiling": 2}}
    assert limits_for(rates, "ListRoots", both) == Limits(1.0, 2.0)
    only_roots = {"ListRoots": {"floor": 1, "ceiling": 2}}
    assert limits_for(rates, "ListTagsForResource", only_roots) == Limits(2.0, 20.0)
    assert limits_for(rates, "ListParents", None) == Limits(1.0, 30.0)


def test_an_override_stored_before_the_bounds_is_held_within_them_not_refused() -> None:
    rates = parse_rates(None, "X")
    stored = {"*": {"floor": 1e-300, "ceiling": 0.001}, "ListRoots": {"floor": 5, "ceiling": 1e4}}
    assert limits_for(rates, "ListParents", stored) == Limits(0.5, 0.5)
    assert limits_for(rates, "ListRoots", stored) == Limits(5.0, 1000.0)
    limits = limits_for(rates, "ListParents", stored)
    _, waits = take_many(Bucket.new(limits, 0.0), 0.0, limits, 3)
    assert waits[-1] <= 4.0  # two seconds a token at the floor: no call sleeps for ever


@pytest.mark.parametrize(
    "text", ["ListRoots=0:5", "ListRoots=5:1", "ListRoots=5", "x=1:2", "*=a:b"]
)
def test_bad_rates_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(SettingsError, match=r"ORGSYNC_AWS_RATES: .*FLOOR"):
        parse_rates(text, "ORGSYNC_AWS_RATES")


def test_tokens_taken_together_are_the_same_as_taken_one_by_one() -> None:
    bucket = Bucket.new(Limits(2.0, 16.0), 0.0)
    one_by_one, waits = bucket, []
    for _ in range(40):
        one_by_one, wait = take(one_by_one, 3.0, LIMITS)
        waits.append(wait)
    assert take_many(bucket, 3.0, LIMITS, 40) == (one_by_one, waits)


def test_a_lease_is_a_tenth_of_a_second_of_the_rate_and_never_empty() -> None:
    assert [lease_size(rate) for rate in (0.5, 9.9, 10.0, 400.0)] == [1, 1, 1, 40]


def test_tokens_given_back_are_banked_again_up_to_the_burst() -> None:
    drained = steady(10.0, tokens=-4.0, at=0.0)
    bucket, wait = take(give_back(drained, 6), 0.0, LIMITS)
    assert wait == 0.0 and bucket.tokens == pytest.approx(1.0)
    full, _ = take(give_back(steady(10.0, tokens=9.0), 50), 0.0, LIMITS)
    assert full.tokens == pytest.approx(10.0 - 1)
    assert give_back(drained, 0) is drained
