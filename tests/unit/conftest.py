"""Unit tests touch no PostgreSQL, RabbitMQ, network or subprocess: a test that tries fails
at once, naming what it tried, instead of passing here and slowing the layer down. Tests that
need one belong in tests/integration."""

from __future__ import annotations

import socket
import subprocess
from typing import Any, NoReturn

import pytest


def refused(what: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError(f"a unit test {what}: move it to tests/integration")

    return refuse


@pytest.fixture(autouse=True)
def no_outside_world(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", refused("opened a connection"))
    monkeypatch.setattr(socket.socket, "connect_ex", refused("opened a connection"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refused("started a process"))
