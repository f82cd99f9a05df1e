"""Events carry ids only, have deterministic message ids, and match their JSON Schemas."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from orgsync.pipelines.events import (
    PAGE_MAX,
    STAGES,
    AccountsDiscovered,
    AccountsValidated,
    Event,
    MalformedEvent,
    OrgRegistered,
    TagsHarvested,
    paged,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schema" / "messages"
SYNC = "5b0c1f5e-8a43-4a43-9d1c-6f1d7b1e2a10"
PAGE = ("123456789012", "210987654321")
EXAMPLES: list[Event] = [
    OrgRegistered(org_id="o-abcdefghij", sync_id=SYNC),
    AccountsDiscovered(org_id="o-abcdefghij", sync_id=SYNC, account_ids=PAGE),
    AccountsValidated(org_id="o-abcdefghij", sync_id=SYNC, account_ids=PAGE, attempt=2),
    TagsHarvested(org_id="o-abcdefghij", sync_id=SYNC, account_ids=PAGE, redrive="retry-1a"),
]
SCHEMA_FILES = {
    OrgRegistered: "org_registered.json",
    AccountsDiscovered: "account_discovered.json",
    AccountsValidated: "account_validated.json",
    TagsHarvested: "tags_harvested.json",
}


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.queue)
def test_an_event_survives_its_payload(event: Event) -> None:
    assert type(event).from_payload(json.loads(json.dumps(event.payload()))) == event


@pytest.mark.parametrize("kind", list(SCHEMA_FILES), ids=lambda k: k.queue)
def test_the_schema_names_exactly_the_event_fields(kind: type[Event]) -> None:
    schema = json.loads((SCHEMAS / SCHEMA_FILES[kind]).read_text())
    assert set(schema["properties"]) == {f.name for f in fields(kind)}
    assert schema["title"] == kind.queue


def test_a_page_holds_at_most_the_bound_its_schema_states() -> None:
    for kind in (AccountsDiscovered, AccountsValidated, TagsHarvested):
        schema = json.loads((SCHEMAS / SCHEMA_FILES[kind]).read_text())
        assert schema["properties"]["account_ids"]["maxItems"] == PAGE_MAX
    assert [len(p) for p in paged([f"{i:012d}" for i in range(120)])] == [50, 50, 20]


def test_the_same_page_always_has_the_same_message_id_in_any_order() -> None:
    again = AccountsDiscovered(org_id="o-abcdefghij", sync_id=SYNC, account_ids=PAGE[::-1])
    assert again.message_id == EXAMPLES[1].message_id
    retried = AccountsDiscovered(
        org_id="o-abcdefghij", sync_id=SYNC, account_ids=PAGE, redrive="retry-1"
    )
    tried_again = AccountsDiscovered(
        org_id="o-abcdefghij", sync_id=SYNC, account_ids=PAGE, attempt=2
    )
    assert len({again.message_id, retried.message_id, tried_again.message_id}) == 3


def test_the_stage_table_names_every_queue_once() -> None:
    assert [s.name for s in STAGES] == [
        "registration",
        "discovery",
        "validation",
        "harvest",
        "reconcile",
    ]
    assert len({s.queue for s in STAGES}) == len(STAGES)
    assert all(s.event is None or s.event.queue == s.queue for s in STAGES)


GOOD = {"org_id": "o-abcdefghij", "sync_id": SYNC, "account_ids": list(PAGE)}


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("not an object", "expected a JSON object"),
        ({"org_id": "o-abcdefghij"}, "missing field 'sync_id'"),
        ({**GOOD, "extra": 1}, "unknown field 'extra'"),
        ({**GOOD, "org_id": 7}, "org_id must be an organization id"),
        ({**GOOD, "org_id": "o-\u0000x"}, "org_id must be an organization id"),
        ({**GOOD, "sync_id": "not-a-uuid"}, "sync_id must be a UUID"),
        ({**GOOD, "account_ids": []}, "account_ids must be a list of 1 to 50"),
        ({**GOOD, "account_ids": ["1"] * 51}, "account_ids must be a list of 1 to 50"),
        ({**GOOD, "account_ids": ["12345678901x"]}, "is not a 12-digit account id"),
        ({**GOOD, "account_ids": [PAGE[0], PAGE[0]]}, "must not repeat an account"),
        ({**GOOD, "attempt": True}, "attempt must be 1 to 100"),
        ({**GOOD, "attempt": 0}, "attempt must be 1 to 100"),
        ({**GOOD, "redrive": "x" * 41}, "redrive must be 1 to 40"),
    ],
    ids=[
        "not-object",
        "missing",
        "unknown",
        "wrong-type",
        "nul",
        "not-uuid",
        "empty-page",
        "page-too-long",
        "bad-account",
        "repeated-account",
        "boolean-attempt",
        "zero-attempt",
        "long-redrive",
    ],
)
def test_a_malformed_payload_names_its_problem(payload: object, problem: str) -> None:
    kind = OrgRegistered if isinstance(payload, dict) and "account_ids" not in payload else None
    with pytest.raises(MalformedEvent, match=problem):
        (kind or AccountsDiscovered).from_payload(payload)


def test_every_problem_of_a_payload_is_named_at_once_in_the_schemas_order() -> None:
    payload = {"sync_id": "x", "extra": 1, "account_ids": [PAGE[0], PAGE[0]], "attempt": 0}

    with pytest.raises(MalformedEvent) as error:
        AccountsDiscovered.from_payload(payload)

    assert str(error.value) == (
        "unknown field 'extra'; missing field 'org_id'; sync_id must be a UUID;"
        " account_ids must not repeat an account; attempt must be 1 to 100000"
    )
