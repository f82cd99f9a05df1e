"""Bad input on every queue and from AWS: recorded with a reason, nothing half-written, and the
worker goes on consuming.

The first test runs a real worker on real RabbitMQ and PostgreSQL (the simulated AWS behind
it): it publishes, with plain AMQP, bodies no actor can read and well-formed events that name
organizations, syncs or accounts that do not exist, on all five queues; then it makes the
simulated AWS answer without fields discovery needs, and runs a sync through the same worker.
The others drive the stages directly with AWS answers that miss fields.
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

from orgsync.pipelines import discovery, harvest
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

pytestmark = pytest.mark.integration
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
    conn: Conn,
    emptied_after: SimulatedAws,
    worker: Path,
) -> None:
    org = build_organization(
        emptied_after.endpoint_url, OrgSpec(accounts=4, suspended=0, excluded=0)
    )
    org_id = register_and_sync(settings, request_for(org, "bad-input"))
    sync_id = syncs.latest_sync(settings, org_id)
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

    rows = syncs.wait_for(all_recorded, TIMEOUT, "not every bad message was recorded")
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
        second = syncs.sync(settings, org_id)
        done = syncs.wait_sync(settings, second, TIMEOUT)
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


class Organizations:
    """Just the three list calls discovery makes, answering whatever the test wrote."""

    def __init__(
        self,
        roots: list[dict[str, Any]],
        accounts: dict[str, list[dict[str, Any]]],
        ous: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.roots, self.accounts, self.ous = roots, accounts, ous or {}

    def list_roots(self, **_: Any) -> dict[str, Any]:
        return {"Roots": self.roots}

    def list_accounts_for_parent(self, ParentId: str, **_: Any) -> dict[str, Any]:
        return {"Accounts": self.accounts.get(ParentId, [])}

    def list_organizational_units_for_parent(self, ParentId: str, **_: Any) -> dict[str, Any]:
        return {"OrganizationalUnits": self.ous.get(ParentId, [])}


def account(account_id: str, **fields: Any) -> dict[str, Any]:
    return {"Id": account_id, "Name": f"n-{account_id}", "State": "ACTIVE", **fields}


def test_accounts_and_ous_missing_fields_are_skipped_and_noted_and_the_walk_goes_on() -> None:
    api = Organizations(
        roots=[{"Id": "r-1", "Name": "Root"}],
        accounts={
            "r-1": [
                account("111111111111"),
                {"Id": "222222222222", "State": "ACTIVE"},  # no Name
                {"Id": "333333333333", "Name": "no-state"},  # neither State nor Status
                {"Name": "no-id", "State": "ACTIVE"},
                account("444444444444", State=None, Status="ACTIVE"),  # Status alone is enough
            ],
            "ou-ok": [account("555555555555")],
        },
        ous={"r-1": [{"Id": "ou-ok", "Name": "Ok"}, {"Id": "ou-nameless"}]},
    )
    malformed: list[str] = []
    seen = [a.account_id for batch in discovery.walk(api, (), malformed=malformed) for a in batch]

    assert sorted(seen) == ["111111111111", "444444444444", "555555555555"]
    assert malformed == [
        "ListAccountsForParent(r-1) returned an account 222222222222 without Name",
        "ListAccountsForParent(r-1) returned an account 333333333333 without State or Status",
        "ListAccountsForParent(r-1) returned an account without Id",
        "ListOrganizationalUnitsForParent(r-1) returned an OU ou-nameless without Name",
    ]
    assert discovery.malformed_error(malformed).startswith("MalformedAnswer: 4 skipped: ")


def test_without_a_list_a_missing_field_stops_the_walk_with_its_reason() -> None:
    api = Organizations(roots=[{"Id": "r-1"}], accounts={"r-1": [{"Id": "222222222222"}]})
    with pytest.raises(discovery.MalformedAnswer, match="222222222222 without Name"):
        list(discovery.walk(api, ()))


def test_list_roots_answering_nothing_is_an_error_not_an_empty_organization() -> None:
    # a complete walk that saw nothing would remove every account of the organization
    with pytest.raises(discovery.MalformedAnswer, match="ListRoots returned no root"):
        list(discovery.walk(Organizations(roots=[], accounts={}), (), malformed=[]))


class Tags:
    def __init__(self, tags: list[Any]) -> None:
        self.tags = tags

    def get_paginator(self, _: str) -> Tags:
        return self

    def paginate(self, **_: Any) -> list[dict[str, Any]]:
        return [{"Tags": self.tags}]


def test_a_tag_without_key_is_a_malformed_answer_and_a_missing_value_is_empty() -> None:
    assert harvest.fetch_tags(Tags([{"Key": "env"}]), "111111111111") == {"env": ""}
    assert harvest.fetch_tags(Tags([]), "111111111111") == {}
    with pytest.raises(harvest.MalformedTags, match="without Key"):
        harvest.fetch_tags(Tags([{"Value": "prod"}]), "111111111111")


def test_a_list_tags_answer_without_tags_means_no_tags() -> None:
    class NoTags(Tags):
        def paginate(self, **_: Any) -> list[dict[str, Any]]:
            return [{}]

    assert harvest.fetch_tags(NoTags([]), "111111111111") == {}
