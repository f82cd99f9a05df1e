"""The contention phase's arithmetic and inventory check (benchmarks/contention_facts.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import contention_facts as facts

SIMULATED = [
    {"id": "123456789012", "name": "master", "path": "Root", "state": "ACTIVE", "tags": {}},
    {
        "id": "100000000000",
        "name": "eng-0001",
        "path": "Root/Engineering",
        "state": "ACTIVE",
        "tags": {"env": "prod"},
    },
    {
        "id": "100000000001",
        "name": "sandbox-eng-0002",
        "path": "Root/Engineering",
        "state": "ACTIVE",
        "tags": {"env": "dev"},
    },
    {"id": "100000000002", "name": "old-0003", "path": "Root", "state": "SUSPENDED", "tags": {}},
]


def stored_rows() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    accounts = [
        {
            "account_id": "123456789012",
            "name": "master",
            "status": "ok",
            "org_path": "Root",
            "tags": {},
        },
        {
            "account_id": "100000000000",
            "name": "eng-0001",
            "status": "ok",
            "org_path": "Root/Engineering",
            "tags": {"env": "prod"},
        },
        {
            "account_id": "100000000002",
            "name": "old-0003",
            "status": "suspended",
            "org_path": "Root",
            "tags": {},
        },
    ]
    badges = []
    for row in accounts:
        aid = row["account_id"]
        badges += [
            {"account_id": aid, "key": facts.ORG_ID_BADGE, "value": "o-1"},
            {"account_id": aid, "key": facts.NICKNAME_BADGE, "value": "a"},
            {"account_id": aid, "key": facts.ORG_PATH_BADGE, "value": row["org_path"]},
        ]
    badges.append({"account_id": "100000000000", "key": "env", "value": "prod"})
    return accounts, badges


def test_an_inventory_that_mirrors_the_simulator_is_clean() -> None:
    want = facts.expected(SIMULATED, "o-1", "a", "sandbox-")

    counts = facts.compare(want, facts.stored(*stored_rows()))

    assert (counts.lost, counts.duplicated, counts.wrong) == (0, 0, 0)
    assert counts.checked == len(want) == 3 * 4 + 2  # 3 accounts x 4 facts, + env tag and badge


def test_a_missing_badge_is_lost_a_stale_tag_wrong_and_an_extra_badge_wrong() -> None:
    accounts, badges = stored_rows()
    accounts[1]["tags"] = {"env": "dev"}
    badges = [b for b in badges if b["key"] != "env"]
    badges.append({"account_id": "123456789012", "key": "stray", "value": "x"})

    counts = facts.compare(
        facts.expected(SIMULATED, "o-1", "a", "sandbox-"),
        facts.stored(accounts, badges),
        unfinished=2,
        repeated=1,
    )

    assert (counts.lost, counts.duplicated, counts.wrong) == (1 + 2, 1, 2)
    assert "lost ('badge', '100000000000', 'env')" in counts.examples


def test_the_floor_is_the_busiest_organizations_api_beyond_its_burst_at_the_rate() -> None:
    counts = {
        "operations": {"ListTagsForResource": 1030, "ListParents": 100, "AssumeRole": 5000},
        "throttled": {"ListTagsForResource": 10},
    }

    floor = facts.floor_seconds(counts, 20.0, 20.0)

    assert floor["floor_s"] == pytest.approx((1020 - 20) / 20)
    assert floor["api"] == "ListTagsForResource"
    assert "AssumeRole" not in floor["answered"]  # STS: A's throttle leaves it alone


def test_the_schedule_is_the_issues_at_10000_accounts_and_shrinks_with_a() -> None:
    full, small = facts.schedule(10_000, 20.0), facts.schedule(200, 20.0)

    assert (full.b_delay_s, full.events) == (30.0, 100)
    assert full.sigterm_at_s == pytest.approx(250.0, abs=0.1)  # midway through ~500 s
    assert (small.b_delay_s, small.events, small.sigterm_at_s) == (3.0, 8, 8.0)


def test_percentiles_interpolate_between_ranks() -> None:
    assert facts.percentile([], 50) is None
    assert facts.percentile([3.0], 99) == 3.0
    assert facts.percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert facts.percentile([float(n) for n in range(1, 101)], 99) == pytest.approx(99.01)
