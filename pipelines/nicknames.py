"""Nicknames name organizations on the command line and in badges, so no two may read alike.

A nickname is stored NFKC-normalised (fullwidth and compatibility forms become plain ones) and
compared case-insensitively (case folding). It is refused when it looks like an organization id
(lookups take an id or a nickname: `o-bbbbbbbbbb` as a nickname would answer for another
organization), and when it is confusable with another organization's nickname: their Unicode
confusables skeletons (UTS #39) are equal, as `b\u0435ta` (with a Cyrillic ie) and `beta` are.

The skeleton is ICU's (PyICU's SpoofChecker), the reference implementation of UTS #39, on the
system's ICU and its Unicode data. The pure-Python packages were weighed and left: one has no
skeleton at all (per-character homoglyph lists, another algorithm), the other has had no
release since 2021.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from typing import Any

import icu
import psycopg

from orgsync.pipelines.events import ORG_ID
from orgsync.pipelines.request_rules import Problem
from orgsync.pipelines.sql import load

SQL = load("orgsync.pipelines")


def normalised(nickname: str) -> str:
    """How a nickname is stored: NFKC."""
    return unicodedata.normalize("NFKC", nickname)


@functools.cache
def _checker() -> Any:
    return icu.SpoofChecker()


def skeleton(nickname: str) -> str:
    """What a nickname looks like, for comparing: UTS #39 skeleton of its NFKC case fold."""
    return str(_checker().getSkeleton(0, normalised(nickname).casefold()))


@functools.cache
def _org_id_look() -> re.Pattern[str]:
    """ORG_ID (o- and 10 to 32 of a-z0-9) as skeletons: what reads as an organization id."""
    chars = sorted({skeleton(c) for c in string.ascii_lowercase + string.digits}, key=len)
    alternatives = "|".join(re.escape(c) for c in reversed(chars))
    return re.compile(f"{re.escape(skeleton('o-'))}(?:{alternatives}){{10,32}}")


def problem(
    conn: psycopg.Connection[dict[str, Any]], nickname: str, org_id: str | None
) -> Problem | None:
    """Why `nickname` may not name organization `org_id` (None: a new one); None when it may."""
    folded = normalised(nickname).casefold()
    looks_like = skeleton(nickname)
    if ORG_ID.fullmatch(folded) or _org_id_look().fullmatch(looks_like):
        return Problem("nickname", "a nickname must not look like an organization id (o-...)")
    others = conn.execute(SQL["other_nicknames"], (org_id,)).fetchall()
    for other in others:
        if skeleton(other["nickname"]) == looks_like:
            same = normalised(other["nickname"]).casefold() == folded
            how = "is already used" if same else f"looks like {other['nickname']!r}, already used"
            return Problem("nickname", f"the nickname {nickname!r} {how}")
    return None
