"""The order a worker takes prefetched messages in: live before bulk, bulk never starved."""

from __future__ import annotations

from dramatiq.worker import _WorkQueueItem

from orgsync.pipelines.events import BULK, LIVE
from orgsync.services.processes.work_order import BULK_EVERY, LiveFirst


class Message:
    def __init__(self, name: str, queue_name: str = "account-validated", lane: str = BULK):
        self.name, self.queue_name = name, queue_name
        self.args = ({"org_id": "o-aaaaaaaaaa", "lane": lane},)


def taken(work: LiveFirst, count: int) -> list[str]:
    return [work.get_nowait().message.name for _ in range(count)]


def test_live_pages_and_registrations_are_taken_before_bulk_pages_that_came_first() -> None:
    work = LiveFirst()
    work.put(_WorkQueueItem(1, Message("bulk-1")))
    work.put(_WorkQueueItem(1, Message("bulk-2")))
    work.put(_WorkQueueItem(2, Message("live-validation", lane=LIVE)))
    registration = Message("verdict", queue_name="org-registration")
    registration.args = ({"request_id": "r-1"},)
    work.put(_WorkQueueItem(0, registration))
    assert work.qsize() == 4
    assert taken(work, 4) == ["verdict", "live-validation", "bulk-1", "bulk-2"]


def test_within_a_lane_later_stages_then_arrival_go_first_as_in_dramatiq() -> None:
    work = LiveFirst()
    work.put(_WorkQueueItem(3, Message("discovery")))
    work.put(_WorkQueueItem(1, Message("harvest-1")))
    work.put(_WorkQueueItem(1, Message("harvest-2")))
    assert taken(work, 3) == ["harvest-1", "harvest-2", "discovery"]


def test_a_stream_of_live_work_still_lets_every_fourth_message_be_bulk() -> None:
    work = LiveFirst()
    for n in range(3):
        work.put(_WorkQueueItem(1, Message(f"bulk-{n}")))
    for n in range(9):
        work.put(_WorkQueueItem(1, Message(f"live-{n}", lane=LIVE)))
    order = taken(work, 12)
    assert [order.index(f"bulk-{n}") for n in range(3)] == [
        BULK_EVERY - 1,
        2 * BULK_EVERY - 1,
        3 * BULK_EVERY - 1,
    ]


def test_a_message_whose_body_is_not_an_event_is_bulk_work() -> None:
    work = LiveFirst()
    odd = Message("odd")
    odd.args = ("not a dict",)  # type: ignore[assignment]
    work.put(_WorkQueueItem(1, odd))
    work.put(_WorkQueueItem(1, Message("live", lane=LIVE)))
    assert taken(work, 2) == ["live", "odd"]
