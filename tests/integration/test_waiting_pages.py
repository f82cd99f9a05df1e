"""Who is waiting for their turn: pages held in the outbox (fair dispatch) as `orgsync queues`,
the exporter, the Pipeline page and /api/queues show them, on real PostgreSQL and RabbitMQ.

The rows are written straight into the outbox, as the stages and the relay would leave them:
held (waiting for the organization's share), ready (released, not yet published) and sent."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from orgsync.services.commands import cli
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.web.app import create_app
from tests.support.cli import orgsync
from tests.support.exporter import sample, scrape, start
from tests.support.web import PASSWORD, TOKEN, add_org, sign_in

pytestmark = pytest.mark.integration

BIG, SMALL = "o-bigbigbig01", "o-smallsmal01"
DISCOVERED, VALIDATED = "account-discovered", "account-validated"


def add_pages(
    conn: psycopg.Connection[Any],
    org_id: str | None,
    queue: str,
    lane: str,
    n: int,
    state: str,
) -> None:
    """`n` outbox rows of one organization, queue and lane: `held`, `ready` or `sent`."""
    conn.execute(
        "INSERT INTO outbox (message_id, queue_name, actor_name, payload, org_id, lane, held,"
        " sent_at) SELECT gen_random_uuid()::text, %s, 'a', '{}', %s, %s, %s,"
        " CASE WHEN %s THEN now() END FROM generate_series(1, %s)",
        (queue, org_id, lane, state == "held", state == "sent", n),
    )


@pytest.fixture
def waiting(conn: psycopg.Connection[Any]) -> None:
    """A big organization's re-sync mostly held back; a small one's pages in flight."""
    add_org(conn, BIG, "big")
    add_org(conn, SMALL, "small")
    add_pages(conn, BIG, DISCOVERED, "bulk", 40, "held")
    add_pages(conn, BIG, DISCOVERED, "bulk", 8, "sent")
    add_pages(conn, BIG, DISCOVERED, "live", 2, "ready")
    add_pages(conn, SMALL, DISCOVERED, "bulk", 3, "sent")
    add_pages(conn, SMALL, VALIDATED, "live", 5, "held")
    add_pages(conn, None, "org-registered", "bulk", 1, "ready")  # no share: not counted
    conn.commit()


# per queue and organization, largest first: (org_id, org, lane, held, in_flight)
EXPECTED = {
    DISCOVERED: [
        (BIG, "big", "bulk", 40, 8),
        (SMALL, "small", "bulk", 0, 3),
        (BIG, "big", "live", 0, 2),
    ],
    VALIDATED: [(SMALL, "small", "live", 5, 0)],
}


def test_orgsync_queues_json_adds_held_and_in_flight_pages_per_queue_and_organization(
    waiting: None, settings: Settings, aws: SimulatedAws
) -> None:
    rows = {row["queue"]: row for row in orgsync(settings, aws, "queues", "--json")}

    for queue, row in rows.items():
        # the fields scripts already read are all still there
        assert {"ready", "in_flight", "delayed", "dead_lettered", "consumers"} <= set(row)
        shares = [
            (s["org_id"], s["org"], s["lane"], s["held"], s["in_flight"])
            for s in row["organizations"]
        ]
        assert shares == EXPECTED.get(queue, [])
        assert row["held"] == sum(s[3] for s in shares)
        assert row["outbox_in_flight"] == sum(s[4] for s in shares)
    assert (rows[DISCOVERED]["held"], rows[DISCOVERED]["outbox_in_flight"]) == (40, 13)
    assert (rows["org-registered"]["held"], rows["org-registered"]["outbox_in_flight"]) == (0, 0)


def test_orgsync_queues_prints_a_second_table_of_who_waits_largest_first(
    waiting: None, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("ORGSYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ORGSYNC_BROKER_URL", settings.broker_url)

    assert cli.main(["queues"]) == 0

    out = capsys.readouterr().out
    depths, who = out.split("waiting for their turn")
    assert re.search(rf"^{DISCOVERED} .* 40\s+13$", depths, re.MULTILINE), depths
    lines = [line.split() for line in who.strip().splitlines()[1:]]
    assert lines[0] == ["ORG", "ID", "ORG", "QUEUE", "LANE", "HELD", "IN", "FLIGHT"]
    assert lines[1:] == [
        [BIG, "big", DISCOVERED, "bulk", "40", "8"],
        [SMALL, "small", VALIDATED, "live", "5", "0"],
        [SMALL, "small", DISCOVERED, "bulk", "0", "3"],
        [BIG, "big", DISCOVERED, "live", "0", "2"],
    ]


@pytest.fixture
def exporter_url(settings: Settings) -> Iterator[str]:
    base, (server, house) = start(settings)
    yield base
    server.shutdown()
    house.close()


def test_the_exporter_exports_pages_waiting_and_in_flight_per_organization_queue_and_lane(
    waiting: None, exporter_url: str
) -> None:
    samples = scrape(exporter_url)

    exported = {
        (labels["org_id"], labels["org"], labels["queue"], labels["lane"]): (
            samples[("orgsync_pages_waiting", key)],
            samples[("orgsync_pages_in_flight", key)],
        )
        for (name, key) in samples
        if name == "orgsync_pages_waiting"
        for labels in [dict(key)]
    }
    assert exported == {
        (org_id, org, queue, lane): (held, in_flight)
        for queue, shares in EXPECTED.items()
        for org_id, org, lane, held, in_flight in shares
    }
    assert sample(samples, "orgsync_exporter_up", service="postgresql") == 1


@pytest.fixture
def web(settings: Settings) -> Iterator[TestClient]:
    app = create_app(dataclasses.replace(settings, web_password=PASSWORD, api_token=TOKEN))
    with TestClient(app, follow_redirects=False) as http:
        sign_in(http)
        yield http


def cells(html: str, table: str) -> list[list[str]]:
    body = html.split(f'<table id="{table}">')[1].split("</table>")[0].split("<tbody>")[1]
    return [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in body.split("</tr>")[:-1]]


def test_the_pipeline_page_shows_who_is_waiting_for_their_turn(
    waiting: None, web: TestClient
) -> None:
    fragment = web.get("/pipeline?fragment=1", headers={"X-Refresh": "1"}).text

    assert "Waiting for their turn" in fragment
    assert cells(fragment, "waiting") == [
        ["big", BIG, DISCOVERED, "bulk", "40", "8"],
        ["small", SMALL, VALIDATED, "live", "5", "0"],
        ["small", SMALL, DISCOVERED, "bulk", "0", "3"],
        ["big", BIG, DISCOVERED, "live", "0", "2"],
    ]
    by_queue = {row[0]: row for row in cells(fragment, "queues")}
    assert by_queue[DISCOVERED][-2:] == ["40", "13"]  # held, in flight by orgsync's count
    assert by_queue[VALIDATED][-2:] == ["5", "0"]


def test_api_queues_carries_the_same_fields_as_orgsync_queues_json(
    waiting: None, web: TestClient
) -> None:
    answer = web.get("/api/queues", headers={"Authorization": f"Bearer {TOKEN}"})

    rows = {row["queue"]: row for row in answer.json()}
    assert (rows[DISCOVERED]["held"], rows[DISCOVERED]["outbox_in_flight"]) == (40, 13)
    assert [s["org"] for s in rows[DISCOVERED]["organizations"]] == ["big", "small", "big"]


def test_an_empty_outbox_leaves_the_waiting_table_saying_so(
    conn: psycopg.Connection[Any], web: TestClient
) -> None:
    fragment = web.get("/pipeline?fragment=1", headers={"X-Refresh": "1"}).text

    assert cells(fragment, "waiting") == [["No organization has pages waiting."]]
