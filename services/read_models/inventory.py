"""What the read commands show, as JSON-ready rows. Never a credential."""

from __future__ import annotations

from typing import Any

import psycopg

from orgsync.pipelines.account_state import StageMark
from orgsync.pipelines.assume_role_advice import likely_causes
from orgsync.pipelines.request_rules import FILTER_FIELDS
from orgsync.pipelines.sql import load

Conn = psycopg.Connection[dict[str, Any]]
SQL = load("orgsync.services.read_models")


def organizations(conn: Conn) -> list[dict[str, Any]]:
    rows = conn.execute(SQL["organizations"]).fetchall()
    for row in rows:
        row["filters"] = {k: row.pop(k) for k in FILTER_FIELDS}
    return rows


def accounts(
    conn: Conn,
    *,
    org_id: str | None = None,
    status: str | None = None,
    badge: tuple[str, str] | None = None,
    include_removed: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The listing, in a stable order; `limit` accounts from `offset` (None: all of them)."""
    return conn.execute(
        SQL["accounts"],
        {
            "org_id": org_id,
            "status": status,
            "include_removed": include_removed,
            "badge_key": badge[0] if badge else None,
            "badge_value": badge[1] if badge else None,
            "limit": limit,
            "offset": offset,
        },
    ).fetchall()


def excluded(conn: Conn, org_id: str | None) -> list[dict[str, Any]]:
    return conn.execute(SQL["excluded_accounts"], {"org_id": org_id}).fetchall()


def registrations(conn: Conn, limit: int) -> list[dict[str, Any]]:
    return conn.execute(SQL["registrations"], (limit,)).fetchall()


def syncs(conn: Conn, org_id: str | None, limit: int) -> list[dict[str, Any]]:
    """The latest syncs (of one organization, or all): mode, state, counts, and `sent`, the
    accounts each sent down per stage and reason."""
    return conn.execute(SQL["syncs"], {"org": org_id, "limit": limit}).fetchall()


def describe_sent(sent: dict[str, dict[str, int]] | None) -> str:
    """A sync's `sent` for people: `validation 3 (new 2, changed 1); harvest 5 (reharvest 5)`,
    or `nothing sent` (an incremental sync of an unchanged organization)."""
    parts = [
        f"{stage} {sum(reasons.values())} ("
        + ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
        + ")"
        for stage, reasons in sorted((sent or {}).items())
    ]
    return "; ".join(parts) or "nothing sent"


def failures(
    conn: Conn, org_id: str | None, account_id: str | None = None, code: str | None = None
) -> list[dict[str, Any]]:
    rows = conn.execute(
        SQL["failed_accounts"], {"org": org_id, "acct": account_id, "code": code}
    ).fetchall()
    for row in rows:
        management = bool(row.pop("management_account"))
        row["likely_causes"] = likely_causes(
            row["code"], member=True, management_account=management
        )
    return rows


def change_events(conn: Conn, org_id: str | None, limit: int = 100) -> list[dict[str, Any]]:
    """The change events received (newest first) and what became of each."""
    return conn.execute(SQL["change_events"], {"org_id": org_id, "limit": limit}).fetchall()


def badges(conn: Conn, account_id: str) -> list[dict[str, Any]]:
    return conn.execute(SQL["account_badges"], (account_id,)).fetchall()


def badge_history(conn: Conn, account_id: str) -> list[dict[str, Any]]:
    return conn.execute(SQL["account_badge_history"], (account_id,)).fetchall()


def sync_progress(conn: Conn, sync_id: str) -> dict[str, Any]:
    """How far a sync has come: its row and its accounts per stage."""
    row = conn.execute(SQL["sync"], (sync_id,)).fetchone()
    stages = conn.execute(SQL["sync_stages"], (sync_id,)).fetchall()
    return {"sync": row["s"] if row else None, "stages": {r["stage"]: r["n"] for r in stages}}


def sync_finished(progress: dict[str, Any]) -> bool:
    sync = progress["sync"]
    busy = sum(n for stage, n in progress["stages"].items() if stage != StageMark.RECONCILED)
    return bool(sync and sync["walked_at"]) and busy == 0
