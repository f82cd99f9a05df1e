"""Issue 18, findings 4, 5 and 10 at registration, on real PostgreSQL (the AWS side faked as in
test_registration: the organization is picked by the role ARN's account)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from pipelines.credentials import Keyring
from pipelines.idempotency import conflict_id, request_digest
from pipelines.orgs import load_organization
from pipelines.registration import decided
from services import client
from services.settings import Settings
from tests.integration.test_registration import (
    ORG,
    arn,
    count,
    credential_fields,
    decide,
    new_request,
    registered,
)

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[dict[str, Any]]
OTHER = "o-secondorg2"


# ---- finding 4: request_id is keyed on what was asked ----------------------------------------


def test_a_request_id_reused_with_another_body_is_rejected_and_changes_nothing(
    conn: Conn, keyring: Keyring
) -> None:
    org_id = registered(conn, keyring, "first")
    first, _ = decide(conn, keyring, {"request_id": "reuse-1", "org_id": org_id, "nickname": "a"})
    assert first.accepted
    syncs = count(conn, "syncs")

    second = {"request_id": "reuse-1", "org_id": org_id, "nickname": "b"}
    verdict, events = decide(conn, keyring, second)

    assert not verdict.accepted and events == []
    assert verdict.reasons[0].field == "request_id"
    assert "already used for a different request" in verdict.reasons[0].message
    org = load_organization(conn, keyring, org_id)
    assert org is not None and org.nickname == "a"
    assert count(conn, "syncs") == syncs
    # its publisher finds this verdict, not the first request's
    digest = request_digest("reuse-1", second)
    assert decided(conn, conflict_id("reuse-1", digest)) == verdict


def test_a_request_id_reused_for_another_organization_does_not_answer_with_the_first_one(
    conn: Conn, keyring: Keyring
) -> None:
    first_org = registered(conn, keyring, "first")
    other = new_request("new-second", "second", **credential_fields(arn("222222222222")))
    assert decide(conn, keyring, other)[0].org_id == OTHER
    assert decide(conn, keyring, {"request_id": "reuse-2", "org_id": OTHER, "nickname": "b2"})[0]

    verdict, _ = decide(conn, keyring, {"request_id": "reuse-2", "org_id": first_org})

    assert not verdict.accepted and verdict.org_id is None  # never the other organization's id


def test_the_same_request_again_gets_the_first_verdict(conn: Conn, keyring: Keyring) -> None:
    request = new_request("same-1")
    first, events = decide(conn, keyring, request)
    again, more = decide(conn, keyring, dict(reversed(list(request.items()))))  # key order aside
    assert first.accepted and again == first
    assert len(events) == 1 and more == []
    assert first.org_id == ORG


def test_the_publisher_of_the_reused_id_waits_for_its_own_verdict(
    conn: Conn, keyring: Keyring, settings: Settings
) -> None:
    org_id = registered(conn, keyring, "first")
    first = {"request_id": "reuse-3", "org_id": org_id, "nickname": "a"}
    second = {"request_id": "reuse-3", "org_id": org_id, "nickname": "b"}
    decide(conn, keyring, first)
    decide(conn, keyring, second)
    conn.commit()

    # what `orgsync update ... --request-id reuse-3` and the web console wait for
    assert client.wait_verdict(settings, "reuse-3", 5, first).accepted
    mine = client.wait_verdict(settings, "reuse-3", 5, second)
    assert not mine.accepted and "already used" in mine.reasons[0].message
