"""Syncs through the front door: start one now, follow it, find an organization's latest."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dramatiq.errors

from orgsync.pipelines.events import Event
from orgsync.pipelines.outbox import emit
from orgsync.pipelines.registration import start_sync
from orgsync.services.adapters import db, relay
from orgsync.services.adapters.broker import make_broker
from orgsync.services.errors import ServiceUnavailable, UserError
from orgsync.services.read_models import inventory
from orgsync.services.settings import Settings


def wait_for(poll: Callable[[], Any], timeout: float, message: str) -> Any:
    """Poll until `poll` returns something other than None, or fail with `message`."""
    deadline = time.monotonic() + timeout
    while (result := poll()) is None:
        if time.monotonic() > deadline:
            raise UserError(message)
        time.sleep(0.25)
    return result


def relay_now(settings: Settings, conn: Any, events: list[Event]) -> None:
    """Commit `events` through the outbox, then publish them at once."""
    with conn.transaction():
        ids = emit(conn, events)
    broker = make_broker(settings.broker_url)
    pool = db.open_pool(settings.database_url, max_size=1)
    try:
        relay.relay(pool, broker, ids)
    except dramatiq.errors.ConnectionError as error:
        raise ServiceUnavailable(
            f"RabbitMQ is unreachable ({error}); the request is saved and a worker's outbox "
            "sweeper publishes it once RabbitMQ is back"
        ) from error
    finally:
        pool.close()
        broker.close()


def sync(
    settings: Settings, org_id: str, trigger: str = "manual", *, confirm_removals: bool = False
) -> str:
    with db.connect(settings.database_url) as conn:
        with conn.transaction():
            event = start_sync(conn, org_id, trigger, confirm_removals=confirm_removals)
        relay_now(settings, conn, [event])
    return event.sync_id


def progress(settings: Settings, sync_id: str) -> dict[str, Any]:
    with db.connect(settings.database_url) as conn:
        return inventory.sync_progress(conn, sync_id)


def wait_sync(
    settings: Settings,
    sync_id: str,
    timeout: float,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    def poll() -> dict[str, Any] | None:
        state = progress(settings, sync_id)
        if on_progress:
            on_progress(state)
        return state if inventory.sync_finished(state) else None

    return wait_for(poll, timeout, f"sync {sync_id} not finished after {timeout:.0f} s")


def latest_sync(settings: Settings, org_id: str) -> str | None:
    with db.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT sync_id::text AS id FROM syncs WHERE org_id = %s"
            " ORDER BY started_at DESC LIMIT 1",
            (org_id,),
        ).fetchone()
    return None if row is None else row["id"]
