"""Numbers read from outside orgsync: text (a setting, a flag, a query parameter, a form field)
and JSON (a message body, an API request, a change event).

Only finite numbers are numbers here. Python reads more: `float()` takes "nan", "inf" and
"1e999" (which overflows to inf), its `json` takes NaN, Infinity and -Infinity (JSON has none of
them), and NaN compares false with everything, so a check such as `value <= most` lets it pass:
`?timeout=nan` once made a thread wait for ever. Text is read as plain ASCII digits, which can
express no such value, and is checked against its bounds; JSON refuses the three names and any
number too large for a double.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# 30 digits: past any bound orgsync states, far from a double's overflow and Python's limit on
# the digits an int may be read from (4,300)
_WHOLE = re.compile(r"[0-9]{1,30}", re.ASCII)
_DECIMAL = re.compile(r"[0-9]{1,30}(\.[0-9]{1,30})?", re.ASCII)


class NotFinite(ValueError):
    """A JSON document holds NaN, an infinity, or a number no double can hold."""


def whole(text: str, least: int | None = None, most: int | None = None) -> int | None:
    """`text` as a whole number of ASCII digits within [least, most]; None when it is not one."""
    if not _WHOLE.fullmatch(text.strip()):
        return None
    value = int(text)
    return value if _within(value, least, most) else None


def decimal(text: str, least: float | None = None, most: float | None = None) -> float | None:
    """`text` as a decimal number (`12`, `0.5`) within [least, most]; None when it is not one.
    No sign, exponent, NaN or infinity is read."""
    if not _DECIMAL.fullmatch(text.strip()):
        return None
    value = float(text)
    return value if _within(value, least, most) else None


def _within(value: float, least: float | None, most: float | None) -> bool:
    return (least is None or value >= least) and (most is None or value <= most)


def loads(document: str | bytes) -> Any:
    """`json.loads`, refusing what JSON does not have (NotFinite, a ValueError, says which)."""
    return json.loads(document, parse_constant=_constant, parse_float=_float, parse_int=_int)


def _constant(name: str) -> float:
    raise NotFinite(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotFinite(f"the number {_shown(text)} is too large for a double")
    return value


def _int(text: str) -> int:
    value = int(text)
    if abs(value) > _LARGEST:
        raise NotFinite(f"the number {_shown(text)} is too large for a double")
    return value


def _shown(text: str) -> str:
    return text if len(text) <= 30 else f"{text[:30]}..."


_LARGEST = int(1.7976931348623157e308)  # the largest double: a larger integer has none
