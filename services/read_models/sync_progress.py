"""Following one sync from the database: a live per-stage line, then a summary.

Everything is read from PostgreSQL (the accounts of the sync by `stage`, and the sync's row),
never from the queues, so any process can follow any sync, and attach to it again later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from orgsync.pipelines.account_state import StageMark
from orgsync.pipelines.sql import load
from orgsync.services.adapters import db
from orgsync.services.errors import UserError
from orgsync.services.read_models import inventory
from orgsync.services.settings import Settings

STAGES = tuple(s.value for s in StageMark)
SQL = load("orgsync.services.read_models")


@dataclass(frozen=True)
class Snapshot:
    """How far a sync has come: its row, and its accounts by the stage they last passed."""

    sync: dict[str, Any] | None
    stages: dict[str, int]

    @property
    def passed(self) -> dict[str, int]:
        """For each stage, the accounts that have passed it (suspended and removed accounts
        go straight to reconciled, so they count as having passed every stage)."""
        return {
            stage: sum(self.stages.get(s, 0) for s in STAGES[i:]) for i, stage in enumerate(STAGES)
        }

    @property
    def finished(self) -> bool:
        return inventory.sync_finished({"sync": self.sync, "stages": self.stages})

    def line(self, elapsed: float) -> str:
        total = self.passed["discovered"]
        walk = "walked" if self.sync and self.sync["walked_at"] else "walking"
        parts = [f"discovery {walk} ({total} accounts)"]
        parts += [f"{stage} {self.passed[stage]}/{total}" for stage in STAGES[1:]]
        return f"{'  '.join(parts)}  {elapsed:.0f}s"


def snapshot(conn: Any, sync_id: str) -> Snapshot:
    state = inventory.sync_progress(conn, sync_id)
    return Snapshot(state["sync"], state["stages"])


def summary(conn: Any, sync_id: str) -> dict[str, Any]:
    row = conn.execute(SQL["sync_summary"], {"sync": sync_id}).fetchone()
    duration = row["duration"]
    return {
        "accounts": row["statuses"],
        "changes": row["changes"],
        "failures": row["failures"],
        "duration_seconds": round(duration.total_seconds(), 1) if duration else None,
    }


def describe_summary(sync_id: str, snap: Snapshot, totals: dict[str, Any]) -> list[str]:
    sync = snap.sync or {}
    verdict = "complete" if sync.get("complete") else "INCOMPLETE"
    error = f" ({sync['error']})" if sync.get("error") else ""
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(totals["accounts"].items()))
    lines = [
        f"sync {sync_id}: {verdict}{error} in {totals['duration_seconds']} s",
        f"  accounts: {statuses or 'none'}",
        f"  badge changes: {totals['changes']}; failed validations: {totals['failures']}",
    ]
    if totals["failures"]:
        lines.append("  `orgsync failed` lists them; `orgsync retry-failed` tries them again")
    return lines


def still_running(sync_id: str, timeout: float) -> UserError:
    return UserError(
        f"sync {sync_id} is not finished after {timeout:.0f} s; it goes on in the background:"
        f" `orgsync sync --attach {sync_id}` follows it again, `orgsync orgs` shows its state"
    )


class Line:
    """One progress line: rewritten in place on a terminal, a new line per change elsewhere."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last = ""

    def show(self, text: str, *, changed_only: str) -> None:
        if self.tty:
            self.out.write("\r\x1b[2K" + text)
        elif changed_only != self.last:
            self.out.write(text + "\n")
        self.last = changed_only
        self.out.flush()

    def end(self) -> None:
        if self.tty and self.last:
            self.out.write("\n")
            self.out.flush()


def follow(
    settings: Settings,
    sync_id: str,
    timeout: float,
    out: TextIO | None = None,
    *,
    interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
) -> Snapshot:
    """Poll the sync until it is finished, showing progress on `out` (None: silently)."""
    line = Line(out) if out is not None else None
    start = clock()
    with db.connect(settings.database_url, autocommit=True) as conn:
        if conn.execute(SQL["sync_exists"], (sync_id,)).fetchone() is None:
            raise UserError(f"no sync {sync_id} (`orgsync orgs --json` shows each last sync)")
        while True:
            snap = snapshot(conn, sync_id)
            elapsed = clock() - start
            if line is not None:
                text = snap.line(elapsed)
                line.show(text, changed_only=text.rsplit("  ", 1)[0])
            if snap.finished:
                break
            if elapsed > timeout:
                if line is not None:
                    line.end()
                raise still_running(sync_id, timeout)
            time.sleep(interval)
    if line is not None:
        line.end()
    return snap


def sync_summary(settings: Settings, sync_id: str) -> dict[str, Any]:
    with db.connect(settings.database_url) as conn:
        return summary(conn, sync_id)


def started_by(settings: Settings, request_id: str) -> str | None:
    """The sync an accepted registration request started."""
    with db.connect(settings.database_url) as conn:
        row = conn.execute(SQL["sync_started_by_registration"], (request_id,)).fetchone()
    return None if row is None else str(row["id"])
