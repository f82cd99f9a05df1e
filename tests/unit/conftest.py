"""Unit tests touch no PostgreSQL, RabbitMQ, network or subprocess: a test that tries fails
at once, naming what it tried, instead of passing here and slowing the layer down. Tests that
need one belong in tests/integration."""

from __future__ import annotations

import socket
import subprocess
import threading
from typing import Any

import pytest


def refused(what: str, original: Any) -> Any:
    """`original`, refused on the thread running the test: a session fixture's thread (the
    integration layer's vhosts, made one ahead and deleted behind) may still be at work."""
    test_thread = threading.current_thread()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is test_thread:
            raise AssertionError(f"a unit test {what}: move it to tests/integration")
        return original(*args, **kwargs)

    return refuse


@pytest.fixture(autouse=True)
def no_outside_world(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket.socket, "connect", refused("opened a connection", socket.socket.connect)
    )
    monkeypatch.setattr(
        socket.socket, "connect_ex", refused("opened a connection", socket.socket.connect_ex)
    )
    monkeypatch.setattr(
        subprocess.Popen, "__init__", refused("started a process", subprocess.Popen.__init__)
    )
