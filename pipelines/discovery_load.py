"""Discovery's load and cleanup: a page of accounts stored in a few set-based statements
(`load_page`), and the walk closed (`finish`): removals only after a complete walk, and only
as many as the removal guard allows.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from psycopg.types.json import Jsonb

from orgsync.pipelines import removal_guard
from orgsync.pipelines.account_state import AccountStatus, StageMark
from orgsync.pipelines.discovery_decisions import ImportDecision, judge, summarize
from orgsync.pipelines.discovery_walk import SeenAccount
from orgsync.pipelines.events import AccountsDiscovered, AccountsValidated, Event
from orgsync.pipelines.orgs import Organization
from orgsync.pipelines.sql import load
from orgsync.pipelines.stage import Conn

SQL = load("orgsync.pipelines")
IMPORTED_FIELDS = ("account_id", "name", "email", "aws_state", "org_path", "parent_id")


def load_page(
    conn: Conn, org: Organization, sync_id: str, accounts: list[SeenAccount], tally: Counter[str]
) -> list[Event]:
    """Store one page of accounts in a few set-based statements; returns the events that start
    them on their way downstream: the active ones to validation, the suspended ones straight to
    harvesting."""
    accounts = list({a.account_id: a for a in accounts}.values())  # one row per account
    imported: list[tuple[SeenAccount, ImportDecision]] = []
    excluded: list[tuple[SeenAccount, str]] = []
    for account in accounts:
        decision = judge(account, org.filters)
        tally["seen"] += 1
        if decision.action == "exclude":
            tally[f"excluded:{decision.reason}"] += 1
            excluded.append((account, decision.reason or "excluded"))
        else:
            tally["suspended" if decision.action == "suspend" else "imported"] += 1
            imported.append((account, decision))
    with conn.cursor() as cur:
        if imported:
            columns: dict[str, list[Any]] = {
                name: [getattr(a, name) for a, _ in imported] for name in IMPORTED_FIELDS
            }
            suspended = [v.action == "suspend" for _, v in imported]
            columns["status"] = [
                AccountStatus.SUSPENDED if s else AccountStatus.PENDING for s in suspended
            ]
            columns["status_reason"] = [v.reason for _, v in imported]
            columns["stage"] = [
                StageMark.VALIDATED if s else StageMark.DISCOVERED for s in suspended
            ]
            cur.execute(
                SQL["upsert_accounts"], {**columns, "org_id": org.org_id, "sync_id": sync_id}
            )
        cur.execute(SQL["forget_exclusions"], (org.org_id, [a.account_id for a, _ in imported]))
        if excluded:
            ids = [a.account_id for a, _ in excluded]
            reasons = [reason for _, reason in excluded]
            cur.execute(
                SQL["upsert_excluded_accounts"],
                (
                    org.org_id,
                    sync_id,
                    ids,
                    [a.name for a, _ in excluded],
                    [a.org_path for a, _ in excluded],
                    [a.aws_state for a, _ in excluded],
                    reasons,
                ),
            )
    active = tuple(a.account_id for a, v in imported if v.action == "import")
    suspended_ids = tuple(a.account_id for a, v in imported if v.action == "suspend")
    events: list[Event] = []
    if active:
        events.append(AccountsDiscovered(org_id=org.org_id, sync_id=sync_id, account_ids=active))
    if suspended_ids:
        events.append(
            AccountsValidated(org_id=org.org_id, sync_id=sync_id, account_ids=suspended_ids)
        )
    return events


def finish(
    conn: Conn,
    org_id: str,
    sync_id: str,
    tally: Counter[str],
    error: str | None,
    removal_limit: float = removal_guard.DEFAULT_LIMIT,
    removal_min: int = removal_guard.DEFAULT_MIN,
) -> dict[str, Any]:
    """Close the walk: clean up only when it was complete, and only as much as the removal
    guard allows; record the sync's counts (and why it is held, when it is)."""
    held = None
    if error is None:
        ids = {"org_id": org_id, "sync_id": sync_id}
        found = conn.execute(SQL["removal_guard_counts"], ids).fetchone()
        assert found is not None
        decision = removal_guard.decide(
            found["accounts"],
            found["removing"],
            limit=removal_limit,
            at_least=removal_min,
            confirmed=bool(found["confirmed"]),
        )
        held = decision.held
        if decision.remove:
            for row in conn.execute(SQL["remove_excluded_accounts"], ids).fetchall():
                tally[f"removed:{row['reason']}"] += 1
            if removed := conn.execute(SQL["remove_unseen_accounts"], ids).fetchall():
                tally["removed:left_organization"] += len(removed)
            conn.execute(SQL["forget_stale_exclusions"], (org_id, sync_id))
    counts = summarize(tally)
    conn.execute(SQL["close_walk"], (error is None, error, Jsonb(counts), held, sync_id))
    return counts
