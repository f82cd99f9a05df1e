"""End to end: the simulated AWS over HTTP and real workers in subprocesses; their fixtures
(`aws`, `simulated_aws`, `worker`) are in tests/support, shared with tests/browser."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def on_empty_queues(empty_queues: None) -> None:
    """Every end-to-end test, whether it uses `worker` or starts its own, starts on empty
    queues (tests/support/workers.py)."""
