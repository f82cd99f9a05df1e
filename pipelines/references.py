"""Does an event name things that exist? Checked in each stage's first read.

An event is well-formed JSON with the right fields and still names an organization, a sync or
accounts that are not there (a hand-written message, a database restored from an older
backup). Such an event is rejected with the reason, rather than skipped in silence or, worse,
acted on: discovery would walk an organization into a sync that does not exist. The same
statement tells which of a page's accounts still wait for the stage, so the check costs no
round trip of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orgsync.pipelines.events import AccountPage, Event
from orgsync.pipelines.sql import load
from orgsync.pipelines.stage import Conn

SQL = load("orgsync.pipelines")


@dataclass(frozen=True)
class Lookup:
    problem: str | None  # why the event cannot be acted on; None when all it names exists
    due: dict[str, dict[str, str]]  # account id -> stored tags, of the accounts still waiting


def look_up(conn: Conn, event: Event, waits_at: str | None = None) -> Lookup:
    """Check what `event` names, and which of its accounts wait at `waits_at`."""
    ids = list(event.account_ids) if isinstance(event, AccountPage) else []
    row: dict[str, Any] | None = conn.execute(
        SQL["look_up_references"],
        {"org": event.org_id, "sync": event.sync_id, "ids": ids, "stage": waits_at},
    ).fetchone()
    assert row is not None
    if not row["org"]:
        return Lookup(f"no organization {_quote(event.org_id)}", {})
    if row["sync_org"] is None:
        return Lookup(f"no sync {event.sync_id}", {})
    if row["sync_org"] != event.org_id:
        return Lookup(f"sync {event.sync_id} belongs to another organization", {})
    if missing := sorted(set(ids) - set(row["known"])):
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return Lookup(
            f"no account {_quote(missing[0])} in organization {_quote(event.org_id)}{more}", {}
        )
    return Lookup(None, {k: dict(v) for k, v in sorted(row["due"].items())})


def _quote(value: str) -> str:
    return ascii(value[:40]) + ("..." if len(value) > 40 else "")
