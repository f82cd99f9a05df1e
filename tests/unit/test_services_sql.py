"""The named statements of services/: each one looked up exists, each one that exists is used.

A module of services/ runs its SQL by name, `SQL = load("orgsync.services.<folder>")` then
`conn.execute(SQL["<name>"], ...)`; this reads the source for those two idioms, so a misspelled
name or a statement nobody runs any more fails here rather than at run time.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import orgsync.services
from orgsync.pipelines.sql import load

SERVICES = Path(orgsync.services.__file__).resolve().parent
PYPROJECT = SERVICES.parent / "pyproject.toml"
LOAD = re.compile(r'^SQL = load\("(orgsync\.services(?:\.[a-z_]+)*)"\)$', re.MULTILINE)
LOOKUP = re.compile(r'\bSQL\["([a-z][a-z0-9_]*)"\]')
ANY_LOOKUP = re.compile(r"\bSQL\[")


def query_files() -> dict[str, Path]:
    """Each services package with a queries.sql, by its dotted name."""
    return {
        ".".join(("orgsync", "services", *path.parent.relative_to(SERVICES).parts)): path
        for path in sorted(SERVICES.rglob("queries.sql"))
    }


def lookups() -> dict[Path, tuple[str, list[str]]]:
    """Each module that runs named statements: the package it loads and the names it looks up."""
    found = {}
    for path in sorted(SERVICES.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        names = LOOKUP.findall(source)
        loads = LOAD.findall(source)
        if names or loads:
            assert len(loads) == 1, f"{path.name}: `SQL = load(...)` once, not {len(loads)} times"
            assert len(ANY_LOOKUP.findall(source)) == len(names), (
                f"{path.name}: a statement looked up by anything but a literal name"
            )
            found[path] = (loads[0], names)
    return found


def test_the_services_have_named_statements_to_check() -> None:
    assert len(query_files()) >= 3
    assert len(lookups()) >= 10


@pytest.mark.parametrize("package", sorted(query_files()))
def test_every_statement_of_a_file_is_run_by_some_module(package: str) -> None:
    used = {name for loaded, names in lookups().values() if loaded == package for name in names}
    assert set(load(package)) - used == set()


def test_every_name_a_module_looks_up_is_in_the_file_it_loads() -> None:
    files = query_files()
    missing = {}
    for path, (package, names) in lookups().items():
        assert package in files, f"{path.name} loads {package}, which has no queries.sql"
        if unknown := sorted(set(names) - set(load(package))):
            missing[str(path.relative_to(SERVICES))] = unknown
    assert missing == {}


def test_the_wheel_ships_every_queries_file() -> None:
    package_data = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]
    for package in query_files():
        assert "*.sql" in package_data.get(package, []), f"package-data lacks {package}"
