"""The removal guard's decision (pipelines/removal_guard.py), on its own."""

from __future__ import annotations

import pytest

from orgsync.pipelines.removal_guard import decide


@pytest.mark.parametrize(
    ("accounts", "removing", "confirmed", "removes"),
    [
        (10, 2, False, True),  # exactly 20 %: allowed
        (10, 3, False, False),
        (10, 10, False, False),
        (10, 10, True, True),  # confirmed
        (0, 0, False, True),  # a first walk
        (1000, 0, False, True),
        (4, 1, False, False),  # 25 % of a small organization
    ],
)
def test_more_than_the_limit_is_held_unless_confirmed(
    accounts: int, removing: int, confirmed: bool, removes: bool
) -> None:
    decision = decide(accounts, removing, limit=0.2, confirmed=confirmed)
    assert decision.remove is removes
    assert (decision.held is None) is removes


def test_the_reason_says_how_many_the_limit_and_what_to_run() -> None:
    held = decide(50, 30, limit=0.2, confirmed=False).held
    assert held is not None
    assert "would remove 30 of 50 accounts (60%), more than the 20% limit" in held
    assert "orgsync sync ORG --confirm-removals" in held
