"""Console sessions and sign-in limits, kept in PostgreSQL so that every web process (and one
started again) sees the same: a cookie names its user and the version it was signed with, and
sign-in attempts are counted per account, per address and in all.

The cookie itself is signed, not stored: what voids it is its user's version moving on
(signing out, a grant of the user's groups removed), checked on every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from orgsync.pipelines.access import Grant, Role
from orgsync.pipelines.sql import load

SQL = load("orgsync.services.use_cases")
Conn = psycopg.Connection[dict[str, Any]]


def start(conn: Conn, subject: str, name: str, groups: list[str]) -> int:
    """The version a new session of `subject` carries."""
    row = conn.execute(SQL["start_session"], (subject, name, groups)).fetchone()
    assert row is not None
    return int(row["version"])


def grants_of(conn: Conn, subject: str, version: int) -> tuple[Grant, ...] | None:
    """The user's grants now; None when the session's version no longer holds."""
    row = conn.execute(SQL["session_user"], (subject, version)).fetchone()
    if row is None:
        return None
    return tuple(Grant(Role.parse(g["role"]), g["org_id"]) for g in row["grants"])


def end(conn: Conn, subject: str, version: int) -> None:
    """Void every session of `subject` signed with `version`, in every process."""
    conn.execute(SQL["end_session"], (subject, version))


def void_group(conn: Conn, group: str) -> None:
    conn.execute(SQL["void_group_sessions"], (group,))


@dataclass(frozen=True)
class Limit:
    key: str  # account:<name>, address:<ip>, global
    most: int  # attempts in a window
    window: float  # seconds


def reserve(conn: Conn, limits: list[Limit]) -> float:
    """Count one sign-in attempt on each limit; 0 when it may go on, else the seconds until
    the first limit it is over lets attempts through again."""
    rows = conn.execute(
        SQL["reserve_sign_in"],
        {"keys": [lim.key for lim in limits], "windows": [lim.window for lim in limits]},
    ).fetchall()
    most = {lim.key: lim.most for lim in limits}
    over = [float(r["seconds_left"]) for r in rows if r["attempts"] > most[r["key"]]]
    return max([max(s, 1.0) for s in over], default=0.0)


def clear(conn: Conn, keys: list[str]) -> None:
    """A right password: its account and address start again from nothing."""
    conn.execute(SQL["clear_sign_in"], (keys,))
