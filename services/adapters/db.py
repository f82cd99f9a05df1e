"""PostgreSQL: connections, the pool each process opens explicitly, and migrations."""

from __future__ import annotations

import re
import time
import weakref
from importlib.resources.abc import Traversable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from orgsync import schema
from orgsync.pipelines.sql import load
from orgsync.services.adapters import connection_advice
from orgsync.services.errors import ServiceUnavailable

# schema/ is a package of data files, so an installed wheel carries the migrations with it
MIGRATIONS = schema.MIGRATIONS
SQL = load("orgsync.services.adapters")
# Any fixed number: every `orgsync migrate` takes this advisory lock, so two at once are safe.
_MIGRATION_LOCK = 0x6F726773
# Every pool here hands out connections whose rows are dicts (its connections' row_factory).
Pool = ConnectionPool[psycopg.Connection[DictRow]]


def describe(url: str) -> str:
    """host:port/dbname of a connection URL, without its password."""
    params = conninfo_to_dict(url)
    return (
        f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"
    )


def unavailable(url: str, error: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(*connection_advice.postgres(url, error))


def connect(url: str, **kwargs: object) -> psycopg.Connection[dict[str, object]]:
    try:
        return psycopg.connect(url, row_factory=dict_row, connect_timeout=5, **kwargs)  # type: ignore[arg-type]
    except psycopg.OperationalError as error:
        raise unavailable(url, error) from error


# A pooled connection handed out within the last second is known to work; one idle for longer
# makes a round trip first (a PostgreSQL restart leaves broken connections in the pool). A
# round trip on every checkout cost more than many of the statements it guarded.
RECHECK_IDLE_SECONDS = 1.0
_handed_out_at: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
    weakref.WeakKeyDictionary()
)


def check_if_idle(conn: psycopg.Connection[Any]) -> None:
    now = time.monotonic()
    if now - _handed_out_at.get(conn, float("-inf")) > RECHECK_IDLE_SECONDS:
        ConnectionPool.check_connection(conn)
    _handed_out_at[conn] = now


def open_pool(url: str, *, max_size: int = 8) -> Pool:
    # one connection first: PostgreSQL's own refusal (no such database, wrong password) names
    # the cause at once, where the pool would retry for its whole timeout and say less
    connect(url).close()
    pool: Pool = ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "connect_timeout": 5},
        check=check_if_idle,
        open=False,
        name="orgsync",
    )
    try:
        pool.open(wait=True, timeout=10)
    except Exception as error:
        pool.close()
        raise unavailable(url, error) from error
    return pool


def ensure_database(url: str) -> bool:
    """Create the database named in `url` when it does not exist yet. True if it was created."""
    params = conninfo_to_dict(url)
    name = str(params.get("dbname") or "")
    admin = make_conninfo(url, dbname="postgres")
    with connect(admin, autocommit=True) as conn:
        if conn.execute(SQL["database_exists"], (name,)).fetchone():
            return False
        try:
            conn.execute(sql.SQL(SQL["create_database"]).format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False  # another process created it in the meantime
        return True


def migration_files() -> list[Traversable]:
    named = (f for f in MIGRATIONS.iterdir() if re.fullmatch(r"\d{4}_.+\.sql", f.name))
    return sorted(named, key=lambda f: f.name)


def version_of(migration: Traversable) -> str:
    """`0002_stuck_syncs` for `0002_stuck_syncs.sql` (a Traversable has a name, not a stem)."""
    return migration.name.removesuffix(".sql")


def migrate(url: str) -> list[str]:
    """Apply the migrations not applied yet, in order, in one transaction. Returns their names."""
    ensure_database(url)
    applied: list[str] = []
    with connect(url) as conn, conn.transaction():
        conn.execute(SQL["migration_lock"], (_MIGRATION_LOCK,))
        conn.execute(SQL["create_migrations_table"])
        done = {row["version"] for row in conn.execute(SQL["applied_migrations"])}
        for path in migration_files():
            version = version_of(path)
            if version in done:
                continue
            conn.execute(path.read_text())
            conn.execute(SQL["record_migration"], (version,))
            applied.append(version)
    return applied
