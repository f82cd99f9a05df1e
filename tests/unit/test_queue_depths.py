"""The outbox's pages added to RabbitMQ's queue depths: per queue, and who waits, largest first."""

from __future__ import annotations

from typing import Any

from orgsync.services.adapters import queues


def depths(*names: str) -> list[dict[str, Any]]:
    return [{"queue": name, "ready": 0, "in_flight": None} for name in names]


def share(org: str, queue: str, lane: str, held: int, in_flight: int) -> dict[str, Any]:
    return {"org_id": f"o-{org}", "org": org, "queue": queue, "lane": lane, "held": held,
            "in_flight": in_flight}  # fmt: skip


def test_each_queue_adds_up_the_pages_its_organizations_hold_and_have_in_flight() -> None:
    rows = depths("discovered", "validated")
    queues.add_outbox(
        rows,
        [share("big", "discovered", "bulk", 40, 8), share("small", "discovered", "live", 0, 2)],
    )

    assert (rows[0]["held"], rows[0]["outbox_in_flight"]) == (40, 10)
    assert [s["org"] for s in rows[0]["organizations"]] == ["big", "small"]
    assert (rows[1]["held"], rows[1]["outbox_in_flight"], rows[1]["organizations"]) == (0, 0, [])
    assert rows[0]["in_flight"] is None  # RabbitMQ's own figure is left alone


def test_an_outbox_not_counted_says_none_rather_than_zero() -> None:
    rows = depths("discovered")
    queues.add_outbox(rows, None)

    assert (rows[0]["held"], rows[0]["outbox_in_flight"], rows[0]["organizations"]) == (
        None,
        None,
        [],
    )


def test_who_waits_is_listed_across_queues_largest_first() -> None:
    rows = depths("discovered", "validated")
    queues.add_outbox(
        rows,
        [
            share("big", "discovered", "bulk", 40, 8),
            share("small", "discovered", "bulk", 0, 3),
            share("small", "validated", "live", 5, 0),
        ],
    )

    waiting = queues.by_organization(rows)

    assert [(w["org"], w["queue"], w["held"]) for w in waiting] == [
        ("big", "discovered", 40),
        ("small", "validated", 5),
        ("small", "discovered", 0),
    ]
