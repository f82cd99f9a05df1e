"""The change-event mapping (pipelines/change_events.py) on bodies written after AWS's
documented CloudTrail log entries for Organizations, kept in tests/data/organizations_events/."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orgsync.pipelines.change_events import WORK, ChangeEvent, Unusable, Work, read

DATA = Path(__file__).resolve().parents[1] / "data" / "organizations_events"
MGMT, MEMBER, ORG = "111111111111", "222222222222", "o-exampleorgid"


def body(name: str, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    doc["detail"].update(changes)
    return doc


def read_doc(doc: object, org_id: str = ORG) -> ChangeEvent | Unusable:
    return read(json.dumps(doc), MGMT, org_id)


EXPECTED = {
    "TagResource": (Work.HARVEST, MEMBER),
    "UntagResource": (Work.HARVEST, MEMBER),
    "MoveAccount": (Work.REDISCOVER, MEMBER),
    "CreateAccountResult": (Work.REDISCOVER, MEMBER),
    "AcceptHandshake": (Work.REDISCOVER, MEMBER),
    "InviteAccountToOrganization": (Work.REDISCOVER, MEMBER),
    "RemoveAccountFromOrganization": (Work.REDISCOVER, MEMBER),
    "LeaveOrganization": (Work.REDISCOVER, MEMBER),
    "CloseAccount": (Work.REDISCOVER, MEMBER),
    "UpdateOrganizationalUnit": (Work.OU_PATHS, "ou-exam-ple22222"),
}


def test_every_event_handled_has_a_recorded_body_and_every_body_an_expectation() -> None:
    assert {p.stem for p in DATA.glob("*.json")} == set(WORK) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_documented_event_becomes_its_smallest_work(name: str) -> None:
    event = read_doc(body(name))
    assert isinstance(event, ChangeEvent), event
    assert (event.work, event.target) == EXPECTED[name]
    assert event.name == name
    assert event.event_id.startswith("EXAMPLE")
    assert event.time.tzinfo is not None and event.time.year == 2020


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not JSON"),
        ("{not json", "not JSON"),
        ("[]", "no detail object"),
        ('{"detail": "x"}', "no detail object"),
        ("x" * 300_000, "larger than SQS allows"),
    ],
)
def test_a_body_that_is_no_event_is_unusable_with_its_reason(text: str, reason: str) -> None:
    result = read(text, MGMT, ORG)
    assert isinstance(result, Unusable) and reason in result.reason


def test_a_failed_call_changes_nothing() -> None:
    result = read_doc(body("TagResource", errorCode="AccessDenied"))
    assert isinstance(result, Unusable) and "the call failed" in result.reason
    assert result.event_id and result.name == "TagResource"  # recorded under its event id


def test_an_unknown_event_name_is_recorded_as_unknown() -> None:
    result = read_doc(body("TagResource", eventName="CreatePolicy"))
    assert isinstance(result, Unusable) and "unknown event 'CreatePolicy'" in result.reason


def test_an_event_of_another_source_is_refused() -> None:
    doc = body("TagResource")
    doc["source"] = "aws.ec2"
    result = read_doc(doc)
    assert isinstance(result, Unusable) and "not an Organizations CloudTrail event" in result.reason


def test_an_event_recorded_in_another_account_than_the_management_account_changes_nothing() -> None:
    doc = body("TagResource")
    doc["account"] = "999999999999"
    result = read_doc(doc)
    assert isinstance(result, Unusable) and "not the management account" in result.reason
    del doc["account"]  # without EventBridge's account, CloudTrail's recipient account decides
    assert isinstance(read_doc(doc), ChangeEvent)
    doc["detail"]["recipientAccountId"] = "999999999999"
    assert isinstance(read_doc(doc), Unusable)


def test_an_event_naming_another_organization_changes_nothing() -> None:
    result = read_doc(body("InviteAccountToOrganization"), org_id="o-anotherorgid1")
    assert isinstance(result, Unusable) and "names organization o-exampleorgid" in result.reason


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("eventID", None, "eventID"),
        ("eventID", "a b", "eventID"),
        ("eventTime", "yesterday", "eventTime"),
        ("eventTime", "2020-09-16T20:21:00", "eventTime"),  # no zone: cannot be ordered
        ("eventName", 42, "eventName"),
        ("requestParameters", {"resourceId": "12345"}, "12-digit account id"),
        ("requestParameters", None, "resourceId"),
    ],
)
def test_a_missing_or_misshapen_field_is_named(field: str, value: object, reason: str) -> None:
    result = read_doc(body("TagResource", **{field: value}))
    assert isinstance(result, Unusable) and reason in result.reason


def test_tags_on_an_ou_or_the_root_ask_for_no_badge() -> None:
    params = {"resourceId": "ou-exam-ple22222", "tags": []}
    result = read_doc(body("TagResource", requestParameters=params))
    assert isinstance(result, Unusable) and "not an account" in result.reason


def test_a_failed_account_creation_has_no_account_to_read() -> None:
    doc = body("CreateAccountResult")
    doc["detail"]["serviceEventDetails"]["createAccountStatus"]["state"] = "FAILED"
    result = read_doc(doc)
    assert isinstance(result, Unusable) and "'FAILED'" in result.reason


def test_an_invitation_by_email_names_no_account_to_read() -> None:
    params = {"target": {"id": "someone@example.com", "type": "EMAIL"}}
    result = read_doc(body("InviteAccountToOrganization", requestParameters=params))
    assert isinstance(result, Unusable) and "'EMAIL'" in result.reason


def test_event_time_is_read_as_utc() -> None:
    event = read_doc(body("MoveAccount"))
    assert isinstance(event, ChangeEvent)
    assert event.time == datetime(2020, 9, 16, 20, 23, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "field", "reason"),
    [
        ("CreateAccountResult", "serviceEventDetails", "account creation 'None'"),
        ("AcceptHandshake", "userIdentity", "recipientAccountId"),
        ("InviteAccountToOrganization", "requestParameters", "invitation by 'None'"),
    ],
)
def test_a_part_that_is_a_string_where_aws_sends_an_object_is_unusable_with_a_reason(
    name: str, field: str, reason: str
) -> None:
    doc = body(name, **{field: "not an object"})
    doc["detail"].pop("recipientAccountId", None)
    event = read_doc(doc)
    assert isinstance(event, Unusable), event
    assert reason in event.reason
    assert event.event_id is not None  # recorded under its own id, once


def test_a_body_nested_fifty_thousand_deep_is_unusable_not_an_error() -> None:
    event = read("[" * 50_000 + "]" * 50_000, MGMT, ORG)
    assert isinstance(event, Unusable) and "nested too deeply" in event.reason
    deep = json.dumps(body("TagResource"))[:-1] + ', "x": ' + "[" * 50_000 + "]" * 50_000 + "}"
    assert isinstance(read(deep, MGMT, ORG), Unusable)


def test_an_event_time_in_the_future_is_refused_and_never_kept_as_a_time() -> None:
    forged = body("TagResource", eventTime="9999-12-31T23:59:59Z")
    event = read_doc(forged)
    assert isinstance(event, Unusable) and "in the future" in event.reason
    assert event.time is None  # so it can never become the feed's last event
    soon = datetime.now(UTC).isoformat()  # a clock a little ahead is no forgery
    assert isinstance(read_doc(body("TagResource", eventTime=soon)), ChangeEvent)
