"""Issue 18, findings 4, 5 and 10 at registration, on real PostgreSQL (the AWS side faked as in
test_registration: the organization is picked by the role ARN's account)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.idempotency import conflict_id, request_digest
from orgsync.pipelines.orgs import load_organization
from orgsync.pipelines.verdicts import decided
from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings
from orgsync.services.use_cases import registering
from tests.support.registration import (
    ORG,
    OU_DEEP,
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
    conn: Conn, keyring: Keyring, settings: Settings, house: House
) -> None:
    org_id = registered(conn, keyring, "first")
    first = {"request_id": "reuse-3", "org_id": org_id, "nickname": "a"}
    second = {"request_id": "reuse-3", "org_id": org_id, "nickname": "b"}
    decide(conn, keyring, first)
    decide(conn, keyring, second)
    conn.commit()

    # what `orgsync update ... --request-id reuse-3` and the web console wait for
    assert registering.wait_verdict(house, "reuse-3", 5, first).accepted
    mine = registering.wait_verdict(house, "reuse-3", 5, second)
    assert not mine.accepted and "already used" in mine.reasons[0].message


# ---- finding 5: nicknames and the scope ------------------------------------------------------


def test_a_nickname_that_is_another_organizations_id_is_refused(
    conn: Conn, keyring: Keyring
) -> None:
    registered(conn, keyring, "first")
    other = new_request("new-second", "second", **credential_fields(arn("222222222222")))
    assert decide(conn, keyring, other)[0].accepted

    cyrillic_o = "\u043e" + ORG[1:]
    for number, nickname in enumerate((ORG, ORG.upper(), cyrillic_o)):
        verdict, _ = decide(
            conn, keyring, {"request_id": f"r-{number}", "org_id": OTHER, "nickname": nickname}
        )
        assert not verdict.accepted, nickname
        assert "must not look like an organization id" in verdict.reasons[0].message


@pytest.mark.parametrize(
    ("taken", "nickname"),
    [
        ("beta", "b\u0435ta"),  # Cyrillic ie
        ("beta", "BETA"),
        ("beta", "\uff42\uff45\uff54\uff41"),  # fullwidth
        ("corn", "com"),  # rn / m
        ("paypal", "payp\u0430l"),
    ],
)
def test_a_nickname_confusable_with_another_is_refused(
    conn: Conn, keyring: Keyring, taken: str, nickname: str
) -> None:
    registered(conn, keyring, taken)
    request = new_request("second", nickname, **credential_fields(arn("222222222222")))
    verdict, _ = decide(conn, keyring, request)
    assert not verdict.accepted
    assert verdict.reasons[0].field == "nickname"
    assert repr(taken) in verdict.reasons[0].message or "already used" in verdict.reasons[0].message


def test_a_nickname_is_stored_nfkc_and_an_organization_may_keep_its_own(
    conn: Conn, keyring: Keyring
) -> None:
    fullwidth = "\uff42\uff45\uff54\uff41"
    verdict, _ = decide(conn, keyring, new_request("new-fullwidth", fullwidth))
    assert verdict.accepted and verdict.org_id is not None
    org_id = verdict.org_id
    org = load_organization(conn, keyring, org_id)
    assert org is not None and org.nickname == "beta"
    verdict, _ = decide(
        conn, keyring, {"request_id": "u-self", "org_id": org_id, "nickname": "Beta"}
    )
    assert verdict.accepted


def test_limit_ou_ids_must_exist_in_the_organization(conn: Conn, keyring: Keyring) -> None:
    org_id = registered(conn, keyring, "first")
    verdict, events = decide(
        conn,
        keyring,
        {"request_id": "ou-1", "org_id": org_id, "limit_ou_ids": ["ou-ab12-typo0000"]},
    )
    assert not verdict.accepted and events == []
    assert verdict.reasons[0].field == "limit_ou_ids"
    assert "ou-ab12-typo0000" in verdict.reasons[0].message
    org = load_organization(conn, keyring, org_id)
    assert org is not None and org.filters.limit_ou_ids == ()

    ok, _ = decide(
        conn,
        keyring,
        {"request_id": "ou-2", "org_id": org_id, "limit_ou_ids": [OU_DEEP, "r-ab12"]},
    )
    assert ok.accepted
