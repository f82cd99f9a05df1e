"""Discovery's transform, pure: what becomes of each account the walk saw, by the
organization's filters (`judge`), the walk's pages gathered into the stages' pages
(`regrouped`), and the walk's tally as the sync's counts (`summarize`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from orgsync.pipelines.discovery_walk import SeenAccount
from orgsync.pipelines.request_rules import Filters

SUSPENDED_STATES = frozenset({"SUSPENDED", "PENDING_CLOSURE", "CLOSED"})


@dataclass(frozen=True)
class ImportDecision:
    """What discovery does with one account: import it, keep it as suspended, or exclude it
    (with the reason, kept in `excluded_accounts`)."""

    action: Literal["import", "suspend", "exclude"]
    reason: str | None = None


def judge(account: SeenAccount, filters: Filters) -> ImportDecision:
    """What discovery does with one account, by the organization's filters."""
    if not account.in_scope:
        return ImportDecision("exclude", "out_of_scope")
    for prefix in filters.exclude_prefixes:
        if account.name.startswith(prefix):
            return ImportDecision("exclude", f"name_prefix:{prefix}")
    if account.aws_state in SUSPENDED_STATES:
        if filters.auto_remove_suspended:
            return ImportDecision("exclude", "suspended")
        return ImportDecision("suspend", f"account is {account.aws_state} in AWS")
    return ImportDecision("import")


def regrouped(batches: Iterator[list[SeenAccount]], size: int) -> Iterator[list[SeenAccount]]:
    """The walk's pages (one parent's accounts each, 20 at most) gathered into pages of up to
    `size` accounts, so a small OU does not cost a message per stage of its own."""
    page: list[SeenAccount] = []
    try:
        for batch in batches:
            if page and len(page) + len(batch) > size:
                yield page
                page = []
            page += batch
            while len(page) >= size:
                yield page[:size]
                page = page[size:]
    except Exception:
        if page:  # what was read before the walk failed is stored all the same
            yield page
        raise
    if page:
        yield page


def summarize(tally: Counter[str]) -> dict[str, Any]:
    counts: dict[str, Any] = {
        "seen": 0,
        "imported": 0,
        "suspended": 0,
        "excluded": {},
        "removed": {},
    }
    for key, n in tally.items():
        group, _, reason = key.partition(":")
        if reason:
            counts[group][reason] = n
        else:
            counts[key] = n
    return counts
