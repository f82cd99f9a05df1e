"""pipelines/queries.sql and the code that runs it agree: no name missing, none unused, no SQL
left inline, and the statements' status and stage literals are the enums' values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import orgsync.pipelines
from orgsync.pipelines.account_state import AccountStatus, StageMark
from orgsync.pipelines.sql import load

PACKAGE = Path(orgsync.pipelines.__file__).parent
QUERIES = load("orgsync.pipelines")
IDIOM = 'SQL = load("orgsync.pipelines")'
LOOKUP = re.compile(r'SQL\["([a-z0-9_]+)"\]')
INLINE = re.compile(r"\b(SELECT\s.+\sFROM|INSERT INTO|UPDATE\s+\w+(\s+\w+)?\s+SET|DELETE FROM)\b")


def sources() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(PACKAGE.glob("*.py"))}


def looked_up() -> dict[str, set[str]]:
    """Each name the code runs, with the modules that run it."""
    names: dict[str, set[str]] = {}
    for module, text in sources().items():
        for name in LOOKUP.findall(text):
            names.setdefault(name, set()).add(module)
    return names


def test_every_name_the_code_runs_is_a_statement_of_the_file() -> None:
    missing = {name: sorted(m) for name, m in looked_up().items() if name not in QUERIES}
    assert missing == {}


def test_every_statement_of_the_file_is_run_somewhere() -> None:
    assert sorted(set(QUERIES) - set(looked_up())) == []


def test_every_module_that_runs_a_statement_loads_them_the_same_way() -> None:
    odd = [m for m, text in sources().items() if LOOKUP.search(text) and IDIOM not in text]
    assert odd == []


def test_no_statement_is_left_inline_in_the_stages() -> None:
    inline = {
        module: [line.strip() for line in text.splitlines() if INLINE.search(line)]
        for module, text in sources().items()
    }
    assert {module: lines for module, lines in inline.items() if lines} == {}


@pytest.mark.parametrize(
    ("column", "allowed"),
    [("status", {s.value for s in AccountStatus}), ("stage", {s.value for s in StageMark})],
)
def test_the_statements_compare_and_set_only_the_values_of_the_enums(
    column: str, allowed: set[str]
) -> None:
    single = re.compile(rf"\b{column}\s*(?:=|<>|IS (?:NOT )?DISTINCT FROM)\s*'(\w+)'")
    listed = re.compile(rf"\b{column}\s+IN\s*\(([^)]*)\)")
    used = set()
    for statement in QUERIES.values():
        used |= set(single.findall(statement))
        for values in listed.findall(statement):
            used |= set(re.findall(r"'(\w+)'", values))
    assert used and used <= allowed
