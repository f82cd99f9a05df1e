"""The console's form: a number field is a whole number of ASCII digits or goes to the registrar
as typed, for its reason (never int('²'), which raised, and never a float)."""

from __future__ import annotations

import pytest

from orgsync.pipelines.request_rules import check_request
from orgsync.services.web import forms

ORG_ID = "o-abcdefghij"


@pytest.mark.parametrize(
    ("typed", "sent", "reason"),
    [
        ("3600", 3600, None),
        ("\u00b2", "\u00b2", "must be an integer (seconds) or null, got string"),
        ("nan", "nan", "must be an integer (seconds) or null, got string"),
        ("1e999", "1e999", "must be an integer (seconds) or null, got string"),
        ("9" * 30, int("9" * 30), "must be 60 to 604800 seconds, got 999"),
        ("9" * 5000, "9" * 5000, "must be an integer (seconds) or null, got string"),
    ],
)
def test_a_number_field_is_sent_as_a_whole_number_or_as_typed_for_the_registrars_reason(
    typed: str, sent: object, reason: str | None
) -> None:
    request = forms.request_from({"sync_interval_seconds": typed}, ORG_ID)
    assert request["sync_interval_seconds"] == sent
    _, problems = check_request(request)
    messages = [p.message for p in problems if p.field == "sync_interval_seconds"]
    if reason is None:
        assert messages == []
    else:
        assert len(messages) == 1 and reason in messages[0]


@pytest.mark.parametrize(
    ("typed", "sent"), [("1h", 3600), ("15m", 900), ("5400s", 5400), ("900", 900), ("1 h", "1 h")]
)
def test_a_duration_field_takes_what_the_cli_takes(typed: str, sent: object) -> None:
    request = forms.request_from({"member_session_duration": typed}, None)
    assert request["member_session_duration"] == sent


def test_a_blank_session_field_is_left_to_the_registrars_default() -> None:
    form = {"nickname": "n", "org_role_arn": "arn:aws:iam::123456789012:role/r"}
    request = forms.request_from(form | {"member_role_name": "m", "org_session_name": " "}, None)
    assert "org_session_name" not in request
    accepted, problems = check_request(request)
    assert problems == [] and accepted is not None and accepted.credentials is not None
    assert accepted.credentials.org_session_name == "orgsync"


def test_a_rejected_form_shows_again_what_was_typed_but_the_external_id() -> None:
    typed = {"org_role_arn": "arn:aws:iam::12345:role/r", "external_id": "s3cret", "nickname": "n"}
    shown = forms.filled(typed)
    assert shown["org_role_arn"] == typed["org_role_arn"] and shown["nickname"] == "n"
    assert "external_id" not in shown
