"""What people read is never a Python repr: cells at any depth, discovery's counts, one
organization in a few lines no wider than 100 characters."""

from __future__ import annotations

from datetime import datetime

from orgsync.services.commands.inventory import describe_org
from orgsync.services.commands.output import cell, counts_text

COUNTS = {
    "seen": 61,
    "imported": 57,
    "suspended": 2,
    "excluded": {"name_prefix:sandbox-": 2},
    "removed": {},
}


def test_a_cell_never_shows_a_python_repr_at_any_depth() -> None:
    shown = cell({"exclude_prefixes": ["sandbox-", "test-"], "removed": {}, "rates": {"a": 1}})
    assert shown == "exclude_prefixes (sandbox-, test-), removed none, rates (a 1)"
    assert cell([]) == "-" and cell(None) == "-" and cell(True) == "yes"


def test_discovery_counts_read_as_a_sentence() -> None:
    assert counts_text(COUNTS) == (
        "61 seen, 57 imported, 2 suspended, 2 excluded (name_prefix:sandbox- 2), 0 removed"
    )
    assert counts_text(None) == "-"


def test_an_organization_is_a_few_narrow_lines() -> None:
    row = {
        "org_id": "o-a1b2c3d4e5",
        "nickname": "prod",
        "accounts": {"ok": 56, "assume_role_failed": 3, "suspended": 2},
        "last_sync": {
            "started_at": datetime(2026, 12, 4, 3, 10, 11).isoformat(),
            "complete": True,
            "counts": COUNTS,
            "mode": "incremental",
            "sent": {"validation": {"new": 2, "changed": 1}, "harvest": {"reharvest": 4}},
        },
        "throttled_now": False,
        "filters": {
            "exclude_prefixes": ["sandbox-"],
            "limit_ou_ids": [],
            "auto_badge": True,
            "auto_remove_suspended": False,
            "sync_interval_seconds": None,
            "events_queue_url": None,
            "aws_rates": None,
        },
        "feed": None,
        "aws_budget": {
            api: {"rate": 50.0, "throttled": 0}
            for api in ("ListTagsForResource", "ListAccountsForParent", "AssumeRole", "ListRoots")
        },
    }
    lines = describe_org(row)
    assert lines[0] == "prod (o-a1b2c3d4e5)"
    assert "  accounts   61: 3 assume_role_failed, 56 ok, 2 suspended" in lines
    assert max(map(len, lines)) <= 100
    text = "\n".join(lines)
    assert "2026-12-04 03:10:11, incremental, complete: 61 seen" in text
    assert "  last sent  harvest 4 (reharvest 4); validation 3 (changed 1, new 2)" in lines
    assert "exclude sandbox-; whole organization; auto-badge on" in text
    assert not any(mark in text for mark in ("{", "[", "'", "None"))
