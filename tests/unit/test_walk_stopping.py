"""A discovery walk lasts minutes: once its process is stopping it gives up at its next page or
nap (raising Stopping, so the worker hands its message back), and never sleeps through a stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orgsync.pipelines import discovery_walk
from orgsync.pipelines.aws_errors import Deferred
from orgsync.pipelines.discovery_walk import WALKS, Stopping, aws_pages, retried


@pytest.fixture(autouse=True)
def not_stopping() -> Iterator[None]:
    WALKS.stopping.clear()
    yield
    WALKS.stopping.clear()


class Pages:
    """ListRoots in pages of one; stops the process after the first page when asked to."""

    def __init__(self, stop_after_first: bool = False) -> None:
        self.calls = 0
        self.stop_after_first = stop_after_first

    def list_roots(self, **params: Any) -> dict[str, Any]:
        self.calls += 1
        if self.stop_after_first:
            WALKS.stopping.set()
        return {"Roots": [{"Id": f"r-{self.calls}"}], "NextToken": f"t{self.calls}"}


def test_a_walk_gives_up_before_its_next_page_once_the_process_stops() -> None:
    client = Pages(stop_after_first=True)
    pages = aws_pages(client, "list_roots", "Roots")
    assert next(pages) == [{"Id": "r-1"}]
    with pytest.raises(Stopping):
        next(pages)
    assert client.calls == 1


def test_every_page_read_is_counted_for_the_worker_health() -> None:
    before = WALKS.pages
    pages = aws_pages(Pages(), "list_roots", "Roots")
    for _ in range(3):
        next(pages)
    assert WALKS.pages == before + 3


def always(error: Exception) -> Any:
    def call(**params: Any) -> dict[str, Any]:
        raise error

    return call


@pytest.mark.parametrize(
    "error",
    [
        Deferred("ListAccountsForParent", 60.0),
        ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "ListRoots"),
    ],
    ids=["deferred by the budget", "throttled by AWS"],
)
def test_a_nap_between_tries_ends_at_once_when_the_process_stops(
    error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discovery_walk, "PAGE_BACKOFF_BASE", 30.0)
    monkeypatch.setattr(discovery_walk, "DEFERRED_NAP_S", 30.0)
    threading.Timer(0.1, WALKS.stopping.set).start()
    started = time.monotonic()
    with pytest.raises(Stopping):
        retried(always(error), time.sleep)
    assert time.monotonic() - started < 5


def test_an_injected_sleep_is_used_as_it_is_and_the_stop_checked_after_it() -> None:
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        WALKS.stopping.set()

    with pytest.raises(Stopping):
        retried(always(Deferred("ListRoots", 0.3)), sleep)
    assert naps == [0.3]
