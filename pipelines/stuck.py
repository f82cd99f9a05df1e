"""The stuck-sync sweeper: re-drives a sync that stopped moving before it finished.

Publisher confirms, the outbox and redelivery of unacked messages leave one way for an account
to stop half way: its message dead-lettered (a database outage outlasting the retries, a bug
fixed since). A sync is *stalled* when it is its organization's current sync, it has not
finished, no event of it waits in the outbox, and nothing of it moved for `bound` seconds: not
its start, its walk, a re-drive, nor any of its accounts' stages. Watching the whole sync
rather than each account means a long backlog that is still draining is never mistaken for a
stall. A stalled sync gets, through the outbox, the event of the stage each of its accounts
waits for, a page at a time (or `org-registered` again when its walk never finished). Message
ids are the stages' own and every stage acts only on accounts waiting for it, so a re-drive
that races a late original changes nothing; `redriven_at` spaces re-drives one bound apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from orgsync.pipelines.events import STAGES, Event, OrgRegistered, paged
from orgsync.pipelines.sql import load

SQL = load("orgsync.pipelines")

# any fixed number: the one process holding it sweeps, the others skip the round
LOCK = 0x6F727374
# accounts.stage of an account waiting for a stage -> the event that stage consumes
WAITING_FOR = {s.waits_at: s.event for s in STAGES if s.waits_at and s.event}
WAITING_STAGES = tuple(WAITING_FOR)


@dataclass(frozen=True)
class Redrive:
    org_id: str
    sync_id: str
    events: list[Event]

    @property
    def walk(self) -> bool:
        return any(isinstance(e, OrgRegistered) for e in self.events)


def waiting_events(org_id: str, sync_id: str, stage: str, account_ids: list[str]) -> list[Event]:
    """The pages of events that accounts waiting at `stage` wait for."""
    event = WAITING_FOR[stage]
    return [
        event(org_id=org_id, sync_id=sync_id, account_ids=page)  # type: ignore[call-arg]
        for page in paged(account_ids)
    ]


def stalled(conn: psycopg.Connection[dict[str, Any]], bound: float) -> list[Redrive]:
    """Every stalled sync with the events that would move it on (reads only)."""
    redrives = []
    for sync in conn.execute(
        SQL["stalled_syncs"], {"bound": bound, "stages": list(WAITING_STAGES)}
    ):
        org_id, sync_id = sync["org_id"], sync["sync_id"]
        events: list[Event] = []
        if not sync["walked"]:
            events.append(OrgRegistered(org_id=org_id, sync_id=sync_id))
        for row in conn.execute(
            SQL["waiting_accounts"], (sync_id, list(WAITING_STAGES))
        ).fetchall():
            events += waiting_events(org_id, sync_id, row["stage"], row["account_ids"])
        redrives.append(Redrive(org_id, sync_id, events))
    return redrives


def sweep(conn: psycopg.Connection[dict[str, Any]], bound: float) -> list[Redrive] | None:
    """Find stalled syncs and mark them re-driven, inside the caller's transaction, whose
    commit must also carry the events (`pipelines.outbox.emit`). None when another process
    holds the sweeper's lock; the lock is the transaction's and goes with it."""
    locked = conn.execute(SQL["try_sweeper_lock"], (LOCK,)).fetchone()
    if not locked or not locked["ok"]:
        return None
    redrives = stalled(conn, bound)
    for redrive in redrives:
        conn.execute(SQL["mark_redriven"], (redrive.sync_id,))
    return redrives
