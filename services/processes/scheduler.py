"""`orgsync scheduler`: a sync of every organization each sync interval.

Several schedulers may run for availability; only the one holding a PostgreSQL advisory lock
acts. The lock is tied to its connection, so a scheduler that dies releases it at once.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from orgsync.services.adapters import db
from orgsync.services.bootstrap import House
from orgsync.services.logs import get_logger
from orgsync.services.settings import Settings
from orgsync.services.use_cases import syncs

log = get_logger("orgsync.scheduler")
_LOCK = 0x6F726763  # any fixed number shared by every scheduler

DUE = """
SELECT o.org_id FROM organizations o
WHERE NOT EXISTS (
    SELECT 1 FROM syncs s WHERE s.org_id = o.org_id
    AND s.started_at > now() - make_interval(secs => coalesce(o.sync_interval_seconds, %s)))
ORDER BY o.org_id
"""


def due(conn: psycopg.Connection[dict[str, Any]], interval: float) -> list[str]:
    """Organizations whose last sync started longer than their interval ago."""
    return [row["org_id"] for row in conn.execute(DUE, (interval,)).fetchall()]


def tick(house: House, conn: psycopg.Connection[dict[str, Any]]) -> list[str]:
    started = []
    for org_id in due(conn, house.settings.sync_interval):
        sync_id = syncs.sync(house, org_id, trigger="schedule")
        log.info("sync_scheduled", org_id=org_id, sync_id=sync_id)
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
                leader = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (_LOCK,)).fetchone()
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
