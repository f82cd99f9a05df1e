"""Printing for people (aligned tables) and for scripts (one JSON document on stdout)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def dumps(document: Any) -> str:
    """The JSON every `--json` read prints, and the web API answers."""
    return json.dumps(document, default=_default, indent=2, sort_keys=False)


def print_json(document: Any) -> None:
    sys.stdout.write(dumps(document) + "\n")


def cell(value: Any) -> str:
    """A value as people read it: never a Python repr, at any depth."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict):
        return ", ".join(f"{k} {_within(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(map(cell, value)) or "-"
    return str(value)


def _within(value: Any) -> str:
    """A value inside a dict's cell: a nested list or dict in parentheses, an empty one as none."""
    if isinstance(value, dict | list | tuple):
        return f"({cell(value)})" if value else "none"
    return cell(value)


def counts_text(counts: dict[str, Any] | None) -> str:
    """A discovery's counts, `{"seen": 61, "excluded": {"name_prefix:sandbox-": 2}, "removed":
    {}}`, as "61 seen, 2 excluded (name_prefix:sandbox- 2), 0 removed"."""
    parts = []
    for name, value in (counts or {}).items():
        if isinstance(value, dict):
            detail = ", ".join(f"{reason} {n}" for reason, n in value.items())
            parts.append(f"{sum(value.values())} {name}" + (f" ({detail})" if detail else ""))
        else:
            parts.append(f"{value} {name}")
    return ", ".join(parts) or "-"


def table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None
) -> str:
    headers = headers or [c.upper().replace("_", " ") for c in columns]
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def changes_text(changes: dict[str, Any]) -> str:
    """`field: old -> new` (or `field: value`), one field after another."""
    parts = []
    for name, value in changes.items():
        if isinstance(value, dict) and set(value) == {"old", "new"}:
            parts.append(f"{name}: {_short(value['old'])} -> {_short(value['new'])}")
        else:
            parts.append(f"{name}: {_short(value)}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
