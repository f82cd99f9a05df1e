"""Syncs through the front door: start one now, follow it, find an organization's latest."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from orgsync.pipelines.audit import By
from orgsync.pipelines.outbox import emit
from orgsync.pipelines.registration import start_sync
from orgsync.pipelines.resync import FULL
from orgsync.pipelines.sql import load
from orgsync.services.bootstrap import House
from orgsync.services.errors import UserError
from orgsync.services.read_models import inventory

SQL = load("orgsync.services.use_cases")
T = TypeVar("T")


def wait_for(poll: Callable[[], T | None], timeout: float, message: str) -> T:
    """Poll until `poll` returns something other than None, or fail with `message`."""
    deadline = time.monotonic() + timeout
    while (result := poll()) is None:
        if time.monotonic() > deadline:
            raise UserError(message)
        time.sleep(0.25)
    return result


def sync(
    house: House,
    org_id: str,
    trigger: str = "manual",
    *,
    confirm_removals: bool = False,
    mode: str = FULL,
    by: By | None = None,
) -> str:
    """Start a sync of `org_id` now, full or incremental (pipelines/resync.py); its id. `by`:
    who asked, for the audit trail (None: the scheduler, no one's request)."""
    with house.connect() as conn, conn.transaction():
        event = start_sync(conn, org_id, trigger, confirm_removals=confirm_removals, mode=mode)
        if by is not None:
            asked = {"mode": mode, "confirm_removals": confirm_removals}
            by.record(conn, "sync.start", org_id, asked, subject=event.sync_id)
        ids = emit(conn, [event])
    house.publish(ids)
    return event.sync_id


def progress(house: House, sync_id: str) -> dict[str, Any]:
    with house.connect() as conn:
        return inventory.sync_progress(conn, sync_id)


def wait_sync(
    house: House,
    sync_id: str,
    timeout: float,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    def poll() -> dict[str, Any] | None:
        state = progress(house, sync_id)
        if on_progress:
            on_progress(state)
        return state if inventory.sync_finished(state) else None

    return wait_for(poll, timeout, f"sync {sync_id} not finished after {timeout:.0f} s")


def latest_sync(house: House, org_id: str) -> str | None:
    with house.connect() as conn:
        row = conn.execute(SQL["latest_sync"], (org_id,)).fetchone()
    return None if row is None else str(row["id"])
