"""The audit trail's pure parts: what a row may hold, and who a queued request names."""

from __future__ import annotations

import json

import pytest

from orgsync.pipelines import access, audit
from orgsync.services.adapters.broker import BROKER_USER, with_broker_user
from orgsync.services.commands.output import changes_text
from orgsync.services.processes.middleware import asked_by, decode_registration
from orgsync.services.use_cases import registering


def test_a_secret_field_is_stored_as_changed_whatever_value_the_caller_passes() -> None:
    changes = {"external_id": "ext-123", "secret": "whsec_x", "credentials": {"a": 1}, "url": "u"}

    kept = audit.without_secrets(changes)

    assert kept == {
        "external_id": audit.SECRET,
        "secret": audit.SECRET,
        "credentials": audit.SECRET,
        "url": "u",
    }


def test_old_new_keeps_only_the_fields_that_changed() -> None:
    old = {"nickname": "a", "auto_badge": False, "exclude_prefixes": ("x",)}
    new = {"nickname": "b", "auto_badge": False, "exclude_prefixes": ("x",), "limit_ou_ids": ()}

    assert audit.old_new(old, new) == {
        "nickname": {"old": "a", "new": "b"},
        "limit_ou_ids": {"old": None, "new": ()},
    }


def test_a_webhook_url_loses_its_user_password_query_and_fragment() -> None:
    shown = audit.shown_url("https://bob:pw@hooks.example.com:8443/in?token=abc#frag")

    assert shown == "https://hooks.example.com:8443/in"


def test_a_door_that_is_not_one_of_the_four_is_refused() -> None:
    with pytest.raises(ValueError, match="no door"):
        audit.By("user:alice", "telnet")


def test_changes_read_as_old_arrow_new_for_people() -> None:
    text = changes_text({"nickname": {"old": "a", "new": "b"}, "mode": "full"})

    assert text == "nickname: a -> b; mode: full"


def test_a_queued_request_names_the_actor_its_publisher_claims_beside_the_broker_user() -> None:
    options = {"orgsync_actor": "user:alice", "orgsync_via": "console", BROKER_USER: "web"}

    by, broker_user = asked_by(options)

    assert (str(by.actor), by.via, broker_user) == ("user:alice", "console", "web")


def test_a_queued_request_without_a_claim_names_its_broker_user_or_unknown() -> None:
    assert str(asked_by({BROKER_USER: "partner"})[0].actor) == "amqp:partner"
    by, broker_user = asked_by({})
    assert (str(by.actor), by.via, broker_user) == ("amqp:unknown", "amqp", None)


def test_an_unreadable_registration_still_carries_who_sent_it() -> None:
    message = decode_registration("m-1", (), {}, {BROKER_USER: "partner"})

    assert message.problem is not None and str(message.by.actor) == "amqp:partner"


def test_the_consumer_replaces_a_broker_user_the_body_claims_by_the_amqp_property() -> None:
    body = json.dumps({"options": {BROKER_USER: "forged"}, "args": []}).encode()

    assert json.loads(with_broker_user(body, "guest"))["options"] == {BROKER_USER: "guest"}
    assert json.loads(with_broker_user(body, None))["options"] == {}


def test_the_cli_acts_as_its_os_user() -> None:
    actor = access.administrator("cli", "root")

    assert str(audit.By(actor, "cli").actor) == "cli:root"


def test_the_console_api_and_cli_name_who_asked_in_the_registration_messages_options() -> None:
    by = audit.By(access.administrator("user", "break-glass"), "console")

    message = registering.registration_message({"request_id": "r-1"}, by)

    assert message.options == {"orgsync_actor": "user:break-glass", "orgsync_via": "console"}
    assert registering.registration_message({"request_id": "r-2"}).options == {}
