"""The one way a test waits: poll a check until it holds, with a deadline.

Deadlines are generous (a loaded two-core machine must stay green) and cost nothing when the
check holds early; the poll interval is short, so a test waits about as long as the thing it
waits for. A check that is itself slow (a scrape, a query over HTTP) may ask for a longer one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str, *, interval: float = 0.05) -> T:
    """Call `check` until it returns something truthy, and return that. After `timeout` seconds
    fail with an AssertionError naming `what` was awaited and the last value `check` returned."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g} s: {what} (last seen: {last!r})")
        time.sleep(interval)
