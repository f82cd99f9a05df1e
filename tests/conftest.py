"""The fixtures every layer shares come from tests/support, registered here (pytest reads
`pytest_plugins` only in the root conftest); a layer's own fixtures are in its conftest.

Markers follow the folders: a test under tests/integration is `integration`, one under
tests/e2e is `e2e`, whatever its module says.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.support.services",
    "tests.support.simulated_aws",
    "tests.support.workers",
    "tests.support.check",
]

MARKER_BY_FOLDER = {"integration": pytest.mark.integration, "e2e": pytest.mark.e2e}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = MARKER_BY_FOLDER.get(item.path.parent.name)
        if marker is not None and item.get_closest_marker(marker.name) is None:
            item.add_marker(marker)


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """A test that runs the CLI in-process configures logging: its handler writes to that
    test's captured stderr, closed after it, and a thread still logging (a console sampling
    its queues) then printed "--- Logging error ---". Each test gets the logging it found."""
    root = logging.getLogger()
    handlers, level, disabled = root.handlers[:], root.level, logging.root.manager.disable
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.disable(disabled)
