"""The registrar's audit rows: one per accepted request, in the transaction that stores the
organization, naming who asked and what changed, never a credential."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from orgsync.pipelines import audit
from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.registration import RegistrationMessage
from tests.support.registration import ORG, arn, credential_fields, decide, new_request

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[dict[str, Any]]
ALICE = audit.By("user:alice", "console")


def rows(conn: Conn) -> list[dict[str, Any]]:
    return list(reversed(audit.trail(conn)))


def test_a_registration_and_an_update_each_write_a_row_naming_who_and_what_changed(
    conn: Conn, keyring: Keyring
) -> None:
    request = new_request("r1", external_id="ext-CANARY-1", exclude_prefixes=["sandbox-"])
    decide(conn, keyring, RegistrationMessage("m1", request, by=ALICE, broker_user="web"))
    update = {"request_id": "r2", "org_id": ORG, "nickname": "renamed", "auto_badge": True}
    decide(conn, keyring, RegistrationMessage("m2", update))

    registered, updated = rows(conn)
    assert (registered["actor"], registered["via"], registered["broker_user"]) == (
        "user:alice", "console", "web"
    )  # fmt: skip
    assert registered["action"] == "organization.register" and registered["org_id"] == ORG
    assert registered["subject"] == "r1"
    assert registered["changes"]["nickname"] == {"old": None, "new": "first"}
    assert registered["changes"]["exclude_prefixes"] == {"old": None, "new": ["sandbox-"]}
    assert registered["changes"]["credentials"] == audit.SECRET
    assert (updated["actor"], updated["via"]) == ("amqp:unknown", "amqp")
    assert updated["action"] == "organization.update"
    assert updated["changes"] == {
        "nickname": {"old": "first", "new": "renamed"},
        "auto_badge": {"old": False, "new": True},
    }
    stored = json.dumps(rows(conn), default=str)
    assert "ext-CANARY-1" not in stored and arn() not in stored and "OrgReader" not in stored


def test_a_rejected_request_writes_no_audit_row(conn: Conn, keyring: Keyring) -> None:
    verdict, _ = decide(conn, keyring, new_request("r1", **credential_fields(arn(name="Denied"))))

    assert not verdict.accepted
    assert rows(conn) == []


def test_a_change_that_fails_after_its_row_rolls_the_row_back(conn: Conn) -> None:
    with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
        audit.record(conn, "user:alice", "console", "webhook.add", None, {"url": "u"})
        conn.execute("INSERT INTO accounts (account_id, name) VALUES ('1', 'a'), ('1', 'b')")

    assert rows(conn) == []
