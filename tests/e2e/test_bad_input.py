"""Bad input on every queue and from AWS: recorded with a reason, nothing half-written, and the
worker goes on consuming (the stages fed AWS answers that miss fields are in
tests/unit/test_bad_input.py).

The test runs a real worker on real RabbitMQ and PostgreSQL (the simulated AWS behind
it): it publishes, with plain AMQP, bodies no actor can read and well-formed events that name
organizations, syncs or accounts that do not exist, on all five queues; then it makes the
simulated AWS answer without fields discovery needs, and runs a sync through the same worker.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from moto.organizations.models import organizations_backends

from orgsync.pipelines.events import (
    QUEUES,
    REGISTRATION_QUEUE,
    STAGES,
    AccountsDiscovered,
    AccountsValidated,
    Event,
    OrgRegistered,
    TagsHarvested,
)
from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws, SimulatedAwsControl
from orgsync.services.testing.sample_org import (
    MANAGEMENT_ACCOUNT_ID,
    OrgSpec,
    build_organization,
)
from orgsync.services.use_cases import syncs
from tests.support.amqp import publish
from tests.support.cli import TIMEOUT, register_and_sync, request_for
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
Conn = psycopg.Connection[dict[str, Any]]
ACTORS = {s.queue: s.actor for s in STAGES}
NO_ACCOUNT = "000000000000"


def envelope(queue: str, args: list[Any], message_id: str) -> bytes:
    return json.dumps(
        {
            "queue_name": queue,
            "actor_name": ACTORS[queue],
            "args": args,
            "kwargs": {},
            "options": {},
            "message_id": message_id,
        }
    ).encode()


def unreadable(queue: str) -> dict[str, bytes]:
    """Bodies no actor can take, each with the words its recorded reason must contain."""
    return {
        "is not JSON": b"{not json",
        "more than the 65536 accepted": b'{"x": "' + b"a" * 70_000 + b'"}',
        "single argument": envelope(queue, [], f"no-args:{queue}"),
    }


def events_naming_nothing(org_id: str, sync_id: str) -> dict[str, Event]:
    """For each stage queue: events naming an organization, sync or account that is not there."""
    ghost_org = {"org_id": "o-doesnotexist", "sync_id": str(uuid.uuid4())}
    bad_sync = {"org_id": org_id, "sync_id": "not-a-uuid"}
    real = {"org_id": org_id, "sync_id": sync_id}
    cases: dict[str, Event] = {
        "no organization": OrgRegistered(**ghost_org),
        "must be a UUID": OrgRegistered(**bad_sync),
    }
    for reason, ids in (
        ("no organization", ghost_org),
        ("must be a UUID", bad_sync),
        ("no account", real),
    ):
        page = {**ids, "account_ids": (NO_ACCOUNT,)}
        cases[f"{reason}|discovered"] = AccountsDiscovered(**page)
        cases[f"{reason}|validated"] = AccountsValidated(**page)
        cases[f"{reason}|harvested"] = TagsHarvested(**page)
    return cases


def rejected(conn: Conn) -> list[dict[str, Any]]:
    return conn.execute("SELECT queue_name, reason FROM rejected_messages ORDER BY id").fetchall()


def inventory(conn: Conn) -> dict[str, Any]:
    """Everything a stage writes, to show a bad message wrote none of it."""
    return {
        table: conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()
        for table in ("organizations", "syncs", "accounts", "badges", "excluded_accounts")
    }


@pytest.fixture
def emptied_after(aws: SimulatedAws) -> Iterator[SimulatedAws]:
    """moto's state is global to the process: leave no organization behind for other tests."""
    yield aws
    SimulatedAwsControl(aws.endpoint_url).reset()


def test_bad_messages_on_every_queue_are_recorded_and_the_worker_keeps_consuming(
    settings: Settings,
    house: House,
    conn: Conn,
    emptied_after: SimulatedAws,
    worker: Path,
) -> None:
    org = build_organization(
        emptied_after.endpoint_url, OrgSpec(accounts=4, suspended=0, excluded=0)
    )
    org_id = register_and_sync(settings, request_for(org, "bad-input"))
    sync_id = syncs.latest_sync(house, org_id)
    assert sync_id is not None
    conn.commit()
    before = inventory(conn)
    registrations_before = conn.execute("SELECT count(*) AS n FROM registrations").fetchone()

    for queue in QUEUES:
        publish(settings.broker_url, queue, list(unreadable(queue).values()))
    events = events_naming_nothing(org_id, sync_id)
    for event in events.values():
        publish(
            settings.broker_url,
            event.queue,
            [envelope(event.queue, [event.payload()], f"ghost:{uuid.uuid4()}")],
        )
    stage_queues = [q for q in QUEUES if q != REGISTRATION_QUEUE]
    expected = len(stage_queues) * len(unreadable(REGISTRATION_QUEUE)) + len(events)

    def all_recorded() -> list[dict[str, Any]] | None:
        with psycopg.connect(settings.database_url) as c:
            c.row_factory = psycopg.rows.dict_row
            rows = rejected(c)
        return rows if len(rows) >= expected else None

    rows = wait_until(all_recorded, TIMEOUT, "every bad message recorded")
    conn.commit()

    assert len(rows) == expected  # each recorded once
    assert Counter(r["queue_name"] for r in rows) == {
        "org-registered": 3 + 2,
        "account-discovered": 3 + 3,
        "account-validated": 3 + 3,
        "tags-harvested": 3 + 3,
    }
    for queue in stage_queues:
        reasons = " / ".join(r["reason"] for r in rows if r["queue_name"] == queue)
        for words in unreadable(queue):
            assert words in reasons, (queue, words, reasons)
    for case, event in events.items():
        reasons = " / ".join(r["reason"] for r in rows if r["queue_name"] == event.queue)
        assert case.partition("|")[0] in reasons, (case, reasons)
    # the registration queue records its own in the registrations table, as rejected requests
    registrations = conn.execute(
        "SELECT count(*) AS n FROM registrations WHERE NOT accepted"
    ).fetchone()
    assert registrations_before is not None and registrations is not None
    assert registrations["n"] >= len(unreadable(REGISTRATION_QUEUE))
    assert inventory(conn) == before  # nothing half-written
    assert (
        conn.execute("SELECT 1 FROM accounts WHERE account_id = %s", (NO_ACCOUNT,)).fetchone()
        is None
    )

    # the same worker goes on: a sync in which AWS answers without the fields discovery needs
    nameless, stateless = org.accounts[0].id, org.accounts[1].id
    backend = organizations_backends[MANAGEMENT_ACCOUNT_ID]["aws"]
    backend.get_account_by_id(nameless).name = None
    broken = backend.get_account_by_id(stateless)
    broken.state = broken.status = None
    try:
        second = syncs.sync(house, org_id)
        done = syncs.wait_sync(house, second, TIMEOUT)
    finally:
        backend.get_account_by_id(nameless).name = org.accounts[0].name
        broken.state = broken.status = "ACTIVE"
    assert done["sync"]["complete"] is False
    error = done["sync"]["error"]
    assert error.startswith("MalformedAnswer: 2 skipped")
    assert f"{nameless} without Name" in error and f"{stateless} without State" in error
    conn.commit()
    statuses = {
        r["account_id"]: r["status"]
        for r in conn.execute(
            "SELECT account_id, status FROM accounts WHERE org_id = %s", (org_id,)
        )
    }
    # the two accounts AWS described badly are kept as they were: never removed on a bad answer
    assert statuses[nameless] == statuses[stateless] == "ok"
    assert "removed" not in statuses.values()


# ---- AWS answers with missing fields, stage by stage ------------------------------------------
