"""`orgsync scheduler`: a sync of every organization each sync interval, incremental for an
organization whose change-event feed is healthy, full otherwise (pipelines/resync.py).

Several schedulers may run for availability; only the one holding a PostgreSQL advisory lock
acts. The lock is tied to its connection, so a scheduler that dies releases it at once.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from orgsync.pipelines import resync
from orgsync.pipelines.sql import load
from orgsync.services.adapters import db
from orgsync.services.bootstrap import House
from orgsync.services.logs import get_logger
from orgsync.services.settings import Settings
from orgsync.services.use_cases import syncs

log = get_logger("orgsync.scheduler")
_LOCK = 0x6F726763  # any fixed number shared by every scheduler

SQL = load("orgsync.services.processes")


def due(conn: psycopg.Connection[dict[str, Any]], interval: float) -> dict[str, str]:
    """Organizations whose last sync started longer than their interval ago, and the mode of
    the sync each is due (incremental when its change-event feed is healthy)."""
    params = {"interval": interval, "healthy": resync.FEED_HEALTHY_WITHIN_S}
    return {
        row["org_id"]: resync.scheduled_mode(row["feed_healthy"])
        for row in conn.execute(SQL["organizations_due"], params).fetchall()
    }


def tick(house: House, conn: psycopg.Connection[dict[str, Any]]) -> list[str]:
    started = []
    for org_id, mode in due(conn, house.settings.sync_interval).items():
        sync_id = syncs.sync(house, org_id, trigger="schedule", mode=mode)
        log.info("sync_scheduled", org_id=org_id, sync_id=sync_id, mode=mode)
        started.append(sync_id)
    return started


def run(settings: Settings, stop: threading.Event, poll: float = 5.0) -> None:
    with House(settings) as house:
        lead(house, stop, poll)


def lead(house: House, stop: threading.Event, poll: float) -> None:
    """Sync what is due while this scheduler holds the leader's lock, on a session of its own."""
    settings = house.settings
    while not stop.is_set():
        try:
            with db.connect(settings.database_url, autocommit=True) as conn:
                leader = conn.execute(SQL["scheduler_lock"], (_LOCK,)).fetchone()
                if not leader or not leader["ok"]:
                    log.info("scheduler_standby", reason="another scheduler holds the lock")
                    stop.wait(poll)
                    continue
                log.info("scheduler_leading", interval=settings.sync_interval)
                while not stop.is_set():
                    tick(house, conn)
                    stop.wait(poll)
        except Exception as error:  # database or broker away: try again, never die
            log.warning("scheduler_retrying", error=str(error))
            stop.wait(poll)
