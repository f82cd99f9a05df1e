"""The migrated schema equals the committed description in schema/snapshot.txt, so a migration
edited after it landed (or a change made outside schema/migrations) fails here.

A new migration changes the schema on purpose; regenerate the snapshot and commit it with it:

    ORGSYNC_SNAPSHOT=write .venv/bin/python -m pytest tests/integration/test_schema_snapshot.py
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg
import pytest

pytestmark = pytest.mark.integration

SNAPSHOT = Path(__file__).resolve().parents[2] / "schema" / "snapshot.txt"
HEADER = (
    "-- The schema after every migration in schema/migrations, as\n"
    "-- tests/integration/test_schema_snapshot.py describes it (see there to regenerate).\n"
)

COLUMNS = """
SELECT c.relname AS table, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname = 'public' AND c.relkind = 'r'
ORDER BY c.relname, a.attnum
"""

CONSTRAINTS = """
SELECT c.relname AS table, k.conname AS name, pg_get_constraintdef(k.oid) AS definition
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public'
ORDER BY c.relname, k.conname
"""

# indexes that back a constraint are described by the constraint
INDEXES = """
SELECT t.relname AS table, i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = 'public'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
ORDER BY t.relname, i.relname
"""


def describe(conn: psycopg.Connection[Any]) -> str:
    """Tables, their columns (type, nullability, default), constraints and indexes, by name."""
    tables: dict[str, list[str]] = {}
    for col in conn.execute(COLUMNS):
        default = f" DEFAULT {col['default']}" if col["default"] is not None else ""
        null = " NOT NULL" if col["not_null"] else ""
        tables.setdefault(col["table"], []).append(
            f"    {col['name']} {col['type']}{null}{default}"
        )
    for con in conn.execute(CONSTRAINTS):
        tables[con["table"]].append(f"    CONSTRAINT {con['name']} {con['definition']}")
    for index in conn.execute(INDEXES):
        tables[index["table"]].append(f"    {index['definition']}")
    body = "\n\n".join(
        f"TABLE {name}\n" + "\n".join(lines) for name, lines in sorted(tables.items())
    )
    return f"{HEADER}\n{body}\n"


def test_the_migrated_schema_is_the_committed_snapshot(conn: psycopg.Connection[Any]) -> None:
    described = describe(conn)
    if os.environ.get("ORGSYNC_SNAPSHOT") == "write":
        SNAPSHOT.write_text(described, encoding="utf-8")
    assert described == SNAPSHOT.read_text(encoding="utf-8")
