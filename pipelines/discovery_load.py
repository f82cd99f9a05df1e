"""Discovery's load and cleanup: a page of accounts stored in a few set-based statements
(`load_page`), and the walk closed (`finish`): removals only after a complete walk, and only
as many as the removal guard allows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from orgsync.pipelines import removal_guard, resync
from orgsync.pipelines.account_state import AccountStatus, StageMark
from orgsync.pipelines.discovery_decisions import ImportDecision, judge, summarize
from orgsync.pipelines.discovery_walk import SeenAccount
from orgsync.pipelines.events import AccountsDiscovered, AccountsValidated, Event, paged
from orgsync.pipelines.orgs import Organization
from orgsync.pipelines.sql import load
from orgsync.pipelines.stage import Conn

SQL = load("orgsync.pipelines")
IMPORTED_FIELDS = ("account_id", "name", "email", "aws_state", "org_path", "parent_id")
# the mark an account gets from the walk: the stage before the first it is sent to, or through
# every stage when it is not sent
FIRST_MARK = {
    "validation": StageMark.DISCOVERED,
    "harvest": StageMark.VALIDATED,
    None: StageMark.RECONCILED,
}


@dataclass(frozen=True)
class Selection:
    """What a sync sends down the stages: its mode, and the ages past which an incremental sync
    validates again and reads tags again (pipelines/resync.py)."""

    mode: str = resync.FULL
    revalidate_after: float = resync.DEFAULT_REVALIDATE_AFTER
    reharvest_after: float = resync.DEFAULT_REHARVEST_AFTER


def load_page(
    conn: Conn,
    org: Organization,
    sync_id: str,
    accounts: list[SeenAccount],
    tally: Counter[str],
    selection: Selection = Selection(),
) -> list[Event]:
    """Store one page of accounts in a few set-based statements; returns the events that start
    those the sync sends on their way downstream (pipelines/resync.py: every one in a full
    sync): to validation, or straight to harvesting (suspended accounts, and tags grown old).
    The page's sends are counted in the sync's row, per stage and reason, in the same
    transaction."""
    accounts = list({a.account_id: a for a in accounts}.values())  # one row per account
    imported: list[tuple[SeenAccount, ImportDecision, resync.Route]] = []
    excluded: list[tuple[SeenAccount, str]] = []
    stored = stored_accounts(conn, [a.account_id for a in accounts], selection)
    for account in accounts:
        decision = judge(account, org.filters)
        tally["seen"] += 1
        if decision.action == "exclude":
            tally[f"excluded:{decision.reason}"] += 1
            excluded.append((account, decision.reason or "excluded"))
            continue
        tally["suspended" if decision.action == "suspend" else "imported"] += 1
        route = resync.route(
            account,
            decision,
            stored.get(account.account_id),
            org_id=org.org_id,
            sync_id=sync_id,
            mode=selection.mode,
        )
        imported.append((account, decision, route))
    with conn.cursor() as cur:
        if imported:
            columns: dict[str, list[Any]] = {
                name: [getattr(a, name) for a, _, _ in imported] for name in IMPORTED_FIELDS
            }
            suspended = [v.action == "suspend" for _, v, _ in imported]
            columns["status"] = [
                AccountStatus.SUSPENDED if s else AccountStatus.PENDING for s in suspended
            ]
            columns["status_reason"] = [v.reason for _, v, _ in imported]
            columns["stage"] = [FIRST_MARK[r.stage] for _, _, r in imported]
            cur.execute(
                SQL["upsert_accounts"], {**columns, "org_id": org.org_id, "sync_id": sync_id}
            )
        cur.execute(SQL["forget_exclusions"], (org.org_id, [a.account_id for a, _, _ in imported]))
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
    sends = [(a.account_id, r) for a, _, r in imported if r.stage is not None]
    count_sent(conn, sync_id, Counter((r.stage, r.reason) for _, r in sends))
    to_validate = [i for i, r in sends if r.stage == "validation"]
    to_harvest = [i for i, r in sends if r.stage == "harvest"]
    events: list[Event] = [
        AccountsDiscovered(org_id=org.org_id, sync_id=sync_id, account_ids=page)
        for page in paged(to_validate)
    ]
    events += [
        AccountsValidated(org_id=org.org_id, sync_id=sync_id, account_ids=page)
        for page in paged(to_harvest)
    ]
    return events


def stored_accounts(
    conn: Conn, account_ids: list[str], selection: Selection
) -> dict[str, resync.Stored]:
    """The stored rows of a page's accounts, locked until the page is stored, so that a change
    event cannot take one over between the decision and the write."""
    rows = conn.execute(
        SQL["stored_accounts"],
        {
            "ids": account_ids,
            "revalidate": selection.revalidate_after,
            "reharvest": selection.reharvest_after,
        },
    ).fetchall()
    return {row["account_id"]: resync.Stored.of(row) for row in rows}


def count_sent(conn: Conn, sync_id: str, sent: Counter[tuple[str | None, Any]]) -> None:
    """Add a page's sends to the sync's `sent` ({stage: {reason: accounts}})."""
    if not sent:
        return
    row = conn.execute(SQL["lock_sync_sent"], (sync_id,)).fetchone()
    totals: dict[str, dict[str, int]] = row["sent"] if row else {}
    for (stage, reason), n in sent.items():
        reasons = totals.setdefault(str(stage), {})
        reasons[str(reason)] = reasons.get(str(reason), 0) + n
    conn.execute(SQL["set_sync_sent"], (Jsonb(totals), sync_id))


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
            conn.execute(SQL["forget_stale_exclusions"], ids)
    counts = summarize(tally)
    conn.execute(SQL["close_walk"], (error is None, error, Jsonb(counts), held, sync_id))
    return counts
