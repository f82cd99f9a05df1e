"""The cloud listing, one page at a time: filters, a sort on an indexed column, LIMIT/OFFSET.

The page's account ids are chosen first (a sort that an index of migration 0004 serves); only
those rows are then joined to their organization and badges, so a page costs the same at
100,000 accounts as at 100 (benchmarks/web_listing.py measures it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from orgsync.pipelines.account_state import AccountStatus
from orgsync.pipelines.sql import load
from orgsync.services.read_models.inventory import Conn

SQL = load("orgsync.services.web")

STATUSES = tuple(s.value for s in AccountStatus)
# what a column header sorts by; each ends with account_id so that pages never overlap
SORTS = {
    "name": ("name", "account_id"),
    "account_id": ("account_id",),
    "status": ("status", "name", "account_id"),
    "org_path": ("org_path", "name", "account_id"),
    "org": ("org_id", "name", "account_id"),
    "updated_at": ("updated_at", "account_id"),
}
PER_PAGE, MAX_PER_PAGE = 50, 200


@dataclass(frozen=True)
class Query:
    org_id: str | None = None
    status: str | None = None
    badge: tuple[str, str] | None = None
    name: str | None = None
    include_removed: bool = False
    sort: str = "name"
    descending: bool = False
    page: int = 1
    per_page: int = PER_PAGE
    scope: list[str] | None = None  # the organizations the reader sees (None: all)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def params(query: Query) -> dict[str, Any]:
    return {
        "org_id": query.org_id,
        "status": query.status,
        "include_removed": query.include_removed,
        "name": _escape_like(query.name) if query.name else None,
        "badge_key": query.badge[0] if query.badge else None,
        "badge_value": query.badge[1] if query.badge else None,
        "limit": query.per_page,
        "offset": (query.page - 1) * query.per_page,
        "scope": query.scope,
    }


def order_by(query: Query) -> sql.Composable:
    direction = sql.SQL(" DESC" if query.descending else "")
    return sql.SQL(", ").join(
        sql.Composed([sql.Identifier("a", column), direction]) for column in SORTS[query.sort]
    )


def page(conn: Conn, query: Query) -> tuple[list[dict[str, Any]], int]:
    """One page of accounts and how many match in all."""
    values = params(query)
    where = sql.SQL(SQL["listing_filter"])
    statement = sql.SQL(SQL["listing_page"]).format(where=where, order=order_by(query))
    rows = conn.execute(statement, values).fetchall()
    count = sql.SQL(SQL["listing_count"]).format(where=where)
    total = conn.execute(count, values).fetchone()
    return rows, int(total["n"]) if total else 0
