"""The removal guard's decision (pipelines/removal_guard.py), on its own."""

from __future__ import annotations

import pytest

from orgsync.pipelines.removal_guard import decide


@pytest.mark.parametrize(
    ("accounts", "removing", "confirmed", "removes"),
    [
        (100, 20, False, True),  # exactly 20 %: allowed
        (100, 21, False, False),
        (100, 100, False, False),
        (100, 100, True, True),  # confirmed
        (0, 0, False, True),  # a first walk
        (1000, 0, False, True),
        (5, 2, False, True),  # a small organization: a few removals are never held
        (30, 10, False, True),  # up to ORGSYNC_REMOVAL_MIN, whatever the share
        (30, 11, False, False),
    ],
)
def test_more_than_the_limit_and_the_minimum_is_held_unless_confirmed(
    accounts: int, removing: int, confirmed: bool, removes: bool
) -> None:
    decision = decide(accounts, removing, limit=0.2, confirmed=confirmed, at_least=10)
    assert decision.remove is removes
    assert (decision.held is None) is removes


def test_with_no_minimum_a_small_organization_is_guarded_by_the_share_alone() -> None:
    assert decide(10, 3, limit=0.2, confirmed=False, at_least=0).held is not None
    assert decide(10, 2, limit=0.2, confirmed=False, at_least=0).held is None


def test_the_reason_says_how_many_the_limit_and_what_to_run() -> None:
    held = decide(50, 30, limit=0.2, confirmed=False, at_least=0).held
    assert held is not None
    assert "would remove 30 of 50 accounts (60%), more than the 20% limit" in held
    assert "orgsync sync ORG --confirm-removals" in held
