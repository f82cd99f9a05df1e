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
# the organizations a console user or API token sees (services/web/roles.py); None: all of them
Scope = list[str] | None


def organizations(conn: Conn, scope: Scope = None) -> list[dict[str, Any]]:
    rows = conn.execute(SQL["organizations"], {"scope": scope}).fetchall()
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
    scope: Scope = None,
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
            "scope": scope,
        },
    ).fetchall()


def excluded(conn: Conn, org_id: str | None, scope: Scope = None) -> list[dict[str, Any]]:
    return conn.execute(SQL["excluded_accounts"], {"org_id": org_id, "scope": scope}).fetchall()


def registrations(conn: Conn, limit: int, scope: Scope = None) -> list[dict[str, Any]]:
    """The latest requests; with a scope, only those naming one of its organizations."""
    return conn.execute(SQL["registrations"], {"limit": limit, "scope": scope}).fetchall()


def syncs(conn: Conn, org_id: str | None, limit: int, scope: Scope = None) -> list[dict[str, Any]]:
    """The latest syncs (of one organization, or all): mode, state, counts, and `sent`, the
    accounts each sent down per stage and reason."""
    return conn.execute(SQL["syncs"], {"org": org_id, "limit": limit, "scope": scope}).fetchall()


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
    conn: Conn,
    org_id: str | None,
    account_id: str | None = None,
    code: str | None = None,
    scope: Scope = None,
) -> list[dict[str, Any]]:
    rows = conn.execute(
        SQL["failed_accounts"], {"org": org_id, "acct": account_id, "code": code, "scope": scope}
    ).fetchall()
    for row in rows:
        management = bool(row.pop("management_account"))
        row["likely_causes"] = likely_causes(
            row["code"], member=True, management_account=management
        )
    return rows


def change_events(
    conn: Conn, org_id: str | None, limit: int = 100, scope: Scope = None
) -> list[dict[str, Any]]:
    """The change events received (newest first) and what became of each."""
    params = {"org_id": org_id, "limit": limit, "scope": scope}
    return conn.execute(SQL["change_events"], params).fetchall()


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
