"""`orgsync migrate` creates the database, applies every migration once, and is safe in parallel."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from orgsync.pipelines.account_state import AccountStatus, StageMark
from orgsync.services.adapters import db

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_url(postgres_url: str) -> Iterator[str]:
    name = f"orgsync_m_{uuid.uuid4().hex[:10]}"
    yield make_conninfo(postgres_url, dbname=name)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migration_files_are_numbered_and_named() -> None:
    names = [p.name for p in db.migration_files()]
    assert names and all(re.fullmatch(r"\d{4}_[a-z0-9_]+\.sql", n) for n in names)
    # numbers are handed out to branches ahead of time, so one may land before a lower one:
    # unique and increasing, applied by name in order (gaps while the other is on its way)
    numbers = [int(n[:4]) for n in names]
    assert numbers == sorted(set(numbers)) and numbers[0] == 1


def test_migrate_creates_the_database_and_applies_every_migration_once(fresh_url: str) -> None:
    first = db.migrate(fresh_url)
    assert first == [db.version_of(p) for p in db.migration_files()]
    assert db.migrate(fresh_url) == []


def test_two_migrations_at_once_apply_each_file_exactly_once(fresh_url: str) -> None:
    db.ensure_database(fresh_url)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: db.migrate(fresh_url), range(2)))
    assert sorted(map(len, results)) == [0, len(db.migration_files())]


@pytest.mark.parametrize(
    ("constraint", "enum"),
    [("accounts_status_check", AccountStatus), ("accounts_stage_check", StageMark)],
)
def test_the_status_and_stage_checks_allow_exactly_the_values_of_the_enums(
    conn: psycopg.Connection[Any], constraint: str, enum: type[StrEnum]
) -> None:
    found = conn.execute(
        "SELECT pg_get_constraintdef(oid) AS definition FROM pg_constraint WHERE conname = %s",
        (constraint,),
    ).fetchone()
    assert found is not None
    assert set(re.findall(r"'(\w+)'::text", found["definition"])) == {e.value for e in enum}


def test_an_account_with_a_stage_mark_that_does_not_exist_is_refused(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute("INSERT INTO accounts (account_id, name) VALUES ('111111111111', 'standalone')")
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE accounts SET stage = 'walked' WHERE account_id = '111111111111'")
