"""SQL kept as SQL: every statement named in a `.sql` file beside the code that runs it.

A file is a sequence of sections, each headed by a line `-- name: <name>`; the lines under a
header, up to the next one, are that statement (its comments included: PostgreSQL skips them).
Lines before the first header describe the file. A file is read once, through
importlib.resources, so an installed wheel finds its statements as a checkout does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

HEADER = re.compile(r"^-- name: ([a-z][a-z0-9_]*)[ \t]*$", re.MULTILINE)


@functools.cache
def load(package: str, filename: str = "queries.sql") -> Mapping[str, str]:
    """The statements of `filename` in `package`, by name."""
    return parse((resources.files(package) / filename).read_text(encoding="utf-8"), filename)


def parse(text: str, filename: str = "<sql>") -> Mapping[str, str]:
    preamble, *sections = HEADER.split(text)
    if any(line.strip() and not line.startswith("--") for line in preamble.splitlines()):
        raise ValueError(f"{filename}: a statement before the first `-- name:` header")
    statements: dict[str, str] = {}
    for name, body in zip(sections[::2], sections[1::2], strict=True):
        if name in statements:
            raise ValueError(f"{filename}: {name!r} is named twice")
        if not body.strip():
            raise ValueError(f"{filename}: {name!r} has no statement")
        statements[name] = body.strip()
    return MappingProxyType(statements)
