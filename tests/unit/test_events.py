"""Events carry ids only, have deterministic message ids, and match their JSON Schemas."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from pipelines.events import (
    AccountDiscovered,
    AccountValidated,
    Event,
    MalformedEvent,
    OrgRegistered,
    TagsHarvested,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schema" / "messages"
SYNC = "5b0c1f5e-8a43-4a43-9d1c-6f1d7b1e2a10"
EXAMPLES: list[Event] = [
    OrgRegistered(org_id="o-abcdefghij", sync_id=SYNC),
    AccountDiscovered(org_id="o-abcdefghij", sync_id=SYNC, account_id="123456789012"),
    AccountValidated(org_id="o-abcdefghij", sync_id=SYNC, account_id="123456789012", status="ok"),
    TagsHarvested(org_id="o-abcdefghij", sync_id=SYNC, account_id="123456789012", changed=True),
]
SCHEMA_FILES = {
    OrgRegistered: "org_registered.json",
    AccountDiscovered: "account_discovered.json",
    AccountValidated: "account_validated.json",
    TagsHarvested: "tags_harvested.json",
}


def schema_for(event: type[Event]) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / SCHEMA_FILES[event]).read_text()))


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.queue)
def test_an_event_survives_its_payload(event: Event) -> None:
    assert type(event).from_payload(json.loads(json.dumps(event.payload()))) == event


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.queue)
def test_an_event_payload_satisfies_its_json_schema(event: Event) -> None:
    schema_for(type(event)).validate(event.payload())


@pytest.mark.parametrize("kind", list(SCHEMA_FILES), ids=lambda k: k.queue)
def test_the_schema_names_exactly_the_event_fields(kind: type[Event]) -> None:
    schema = json.loads((SCHEMAS / SCHEMA_FILES[kind]).read_text())
    assert set(schema["properties"]) == {f.name for f in fields(kind)}
    assert schema["title"] == kind.queue


def test_the_same_event_always_has_the_same_message_id() -> None:
    again = AccountDiscovered(org_id="o-abcdefghij", sync_id=SYNC, account_id="123456789012")
    assert again.message_id == EXAMPLES[1].message_id
    retried = AccountDiscovered(
        org_id="o-abcdefghij", sync_id=SYNC, account_id="123456789012", attempt="retry-1"
    )
    assert retried.message_id != again.message_id


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("not an object", "expected a JSON object"),
        ({"org_id": "o-abcdefghij"}, "missing field 'sync_id'"),
        ({"org_id": "o-abcdefghij", "sync_id": SYNC, "extra": 1}, "unknown field 'extra'"),
        ({"org_id": 7, "sync_id": SYNC}, "org_id must be str"),
        ({"org_id": "", "sync_id": SYNC}, "org_id must be str"),
    ],
    ids=["not-object", "missing", "unknown", "wrong-type", "empty"],
)
def test_a_malformed_payload_names_its_problem(payload: object, problem: str) -> None:
    with pytest.raises(MalformedEvent, match=problem):
        OrgRegistered.from_payload(payload)


def test_a_boolean_field_accepts_only_booleans() -> None:
    payload = {**EXAMPLES[3].payload(), "changed": "yes"}
    with pytest.raises(MalformedEvent, match="changed must be bool"):
        TagsHarvested.from_payload(payload)
