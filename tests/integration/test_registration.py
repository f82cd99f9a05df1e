"""`registration.register` on real PostgreSQL: what a verdict writes, and every edit case.

The live checks run against a fake `assume` whose role belongs to the organization named in
its ARN's account, so a test picks the organization by the ARN it sends.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from orgsync.pipelines import badges
from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.events import OrgRegistered, TagsHarvested
from orgsync.pipelines.orgs import load_organization
from orgsync.pipelines.registration import RegistrationMessage
from orgsync.pipelines.request_rules import Problem
from orgsync.services.processes import scheduler
from tests.support.registration import (
    ORG,
    Assume,
    arn,
    count,
    credential_fields,
    decide,
    new_request,
    registered,
)
from tests.support.stages import stage_deps

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[dict[str, Any]]


def test_a_new_registration_stores_the_organization_sealed_and_starts_a_sync(
    conn: Conn, keyring: Keyring
) -> None:
    verdict, events = decide(conn, keyring, new_request("r1", exclude_prefixes=["sandbox-"]))

    assert verdict.accepted and verdict.org_id == ORG
    org = load_organization(conn, keyring, ORG)
    assert org is not None and org.nickname == "first"
    assert org.credentials.org_role_arn == arn()
    assert org.filters.exclude_prefixes == ("sandbox-",)
    assert [type(e) for e in events] == [OrgRegistered]
    stored = conn.execute("SELECT credentials FROM organizations").fetchone()
    assert stored is not None and b"OrgReader" not in bytes(stored["credentials"])
    row = conn.execute("SELECT kind, request FROM registrations WHERE request_id = 'r1'").fetchone()
    assert row is not None and row["kind"] == "register"
    assert row["request"]["credentials"] == "given" and "OrgReader" not in str(row["request"])


def test_an_update_with_every_credential_field_replaces_them_and_checks_the_new_role(
    conn: Conn, keyring: Keyring
) -> None:
    registered(conn, keyring)
    assume = Assume()
    update = {"request_id": "u1", "org_id": ORG, **credential_fields(arn(name="NewReader"))}

    verdict, events = decide(conn, keyring, update, assume)

    assert verdict.accepted and len(events) == 1
    assert assume.assumed == [arn(name="NewReader")]
    org = load_organization(conn, keyring, ORG)
    assert org is not None and org.credentials.org_role_arn == arn(name="NewReader")
    assert org.nickname == "first"


def test_an_update_whose_new_role_cannot_be_assumed_is_rejected_and_keeps_the_old_one(
    conn: Conn, keyring: Keyring
) -> None:
    registered(conn, keyring)
    update = {"request_id": "u1", "org_id": ORG, **credential_fields(arn(name="DeniedReader"))}

    verdict, events = decide(conn, keyring, update)

    assert not verdict.accepted and events == []
    assert [p.field for p in verdict.reasons] == ["org_role_arn"]
    org = load_organization(conn, keyring, ORG)
    assert org is not None and org.credentials.org_role_arn == arn()


def test_an_update_without_credential_fields_keeps_them_without_assuming_the_role(
    conn: Conn, keyring: Keyring
) -> None:
    registered(conn, keyring, external_id="tenant-4d2e")
    assume = Assume()

    verdict, events = decide(conn, keyring, {"request_id": "u1", "org_id": ORG}, assume)

    assert verdict.accepted and len(events) == 1
    assert assume.assumed == []
    org = load_organization(conn, keyring, ORG)
    assert org is not None
    assert org.credentials.external_id == "tenant-4d2e"
    assert org.credentials.org_role_arn == arn()


def test_an_update_with_some_credential_fields_is_rejected_naming_the_missing_ones(
    conn: Conn, keyring: Keyring
) -> None:
    registered(conn, keyring)
    before = conn.execute("SELECT credentials FROM organizations").fetchone()
    update = {"request_id": "u1", "org_id": ORG, "org_role_arn": arn(name="Other")}

    verdict, events = decide(conn, keyring, update)

    assert not verdict.accepted and events == []
    [problem] = [p for p in verdict.reasons if p.field == "credentials"]
    assert problem.message.endswith("missing member_role_name")  # the rest have defaults
    assert "external_id" not in problem.message  # optional: never "missing"
    assert conn.execute("SELECT credentials FROM organizations").fetchone() == before


def test_filters_change_alone_and_the_others_are_kept(conn: Conn, keyring: Keyring) -> None:
    registered(conn, keyring, exclude_prefixes=["sandbox-"], auto_badge=True)

    verdict, events = decide(
        conn, keyring, {"request_id": "u1", "org_id": ORG, "limit_ou_ids": ["ou-ab12-cdefgh34"]}
    )

    assert verdict.accepted and len(events) == 1
    org = load_organization(conn, keyring, ORG)
    assert org is not None
    assert org.filters.limit_ou_ids == ("ou-ab12-cdefgh34",)
    assert org.filters.exclude_prefixes == ("sandbox-",) and org.filters.auto_badge is True
    assert org.filters.auto_remove_suspended is False


def test_a_per_organization_sync_interval_overrides_the_scheduler_default_until_cleared(
    conn: Conn, keyring: Keyring
) -> None:
    registered(conn, keyring, sync_interval_seconds=600)
    conn.execute("UPDATE syncs SET started_at = now() - interval '20 minutes'")
    assert scheduler.due(conn, interval=3600) == {ORG: "full"}  # its own 10 minutes have passed

    verdict, _ = decide(
        conn, keyring, {"request_id": "u1", "org_id": ORG, "sync_interval_seconds": None}
    )
    conn.execute("UPDATE syncs SET started_at = now() - interval '20 minutes'")

    assert verdict.accepted
    assert scheduler.due(conn, interval=3600) == {}  # back on the default hour
    org = load_organization(conn, keyring, ORG)
    assert org is not None and org.filters.sync_interval_seconds is None


def stored_rates(conn: Conn) -> object:
    row = conn.execute(
        "SELECT aws_rates, aws_rates IS NULL AS absent FROM organizations WHERE org_id = %s",
        (ORG,),
    ).fetchone()
    assert row is not None
    return None if row["absent"] else row["aws_rates"]


def test_an_aws_rate_override_is_stored_changed_alone_and_cleared_with_null(
    conn: Conn, keyring: Keyring
) -> None:
    override = {"*": {"floor": 1, "ceiling": 20}, "ListParents": {"floor": 0.5, "ceiling": 5}}
    registered(conn, keyring, auto_badge=True, aws_rates=override)
    assert stored_rates(conn) == override

    changed = {"ListRoots": {"floor": 2, "ceiling": 4}}
    verdict, events = decide(
        conn, keyring, {"request_id": "u1", "org_id": ORG, "aws_rates": changed}
    )
    assert verdict.accepted and len(events) == 1
    assert stored_rates(conn) == changed
    org = load_organization(conn, keyring, ORG)
    assert org is not None and org.filters.aws_rates == changed and org.filters.auto_badge

    decide(conn, keyring, {"request_id": "u2", "org_id": ORG, "auto_badge": False})
    assert stored_rates(conn) == changed  # another filter's update keeps it

    verdict, _ = decide(conn, keyring, {"request_id": "u3", "org_id": ORG, "aws_rates": None})
    assert verdict.accepted
    assert stored_rates(conn) is None  # SQL NULL, not a JSON null
    org = load_organization(conn, keyring, ORG)
    assert org is not None and org.filters.aws_rates is None


def test_a_bad_aws_rate_override_is_rejected_and_keeps_the_stored_one(
    conn: Conn, keyring: Keyring
) -> None:
    override = {"*": {"floor": 1, "ceiling": 20}}
    registered(conn, keyring, aws_rates=override)

    verdict, events = decide(
        conn,
        keyring,
        {
            "request_id": "u1",
            "org_id": ORG,
            "aws_rates": {"AssumeRole": {"floor": 1, "ceiling": 9}},
        },
    )

    assert not verdict.accepted and events == []
    assert [p.field for p in verdict.reasons] == ["aws_rates"]
    assert "ORGSYNC_AWS_RATES" in verdict.reasons[0].message
    assert stored_rates(conn) == override


def test_every_accepted_update_starts_a_sync(conn: Conn, keyring: Keyring) -> None:
    registered(conn, keyring)

    for number, change in enumerate(({"auto_badge": True}, {}, {"nickname": "renamed"})):
        verdict, events = decide(
            conn, keyring, {"request_id": f"u{number}", "org_id": ORG, **change}
        )
        assert verdict.accepted and [type(e) for e in events] == [OrgRegistered]

    assert count(conn, "syncs") == 4


def test_a_nickname_another_organization_uses_in_any_case_is_rejected(
    conn: Conn, keyring: Keyring
) -> None:
    registered(conn, keyring, nickname="Production")
    second = new_request("r2", "PRODUCTION", **credential_fields(arn("222222222222")))

    verdict, _ = decide(conn, keyring, second)

    assert not verdict.accepted
    assert [p.field for p in verdict.reasons] == ["nickname"]
    assert count(conn, "organizations") == 1
    renamed = {"request_id": "u1", "org_id": ORG, "nickname": "production"}
    assert decide(conn, keyring, renamed)[0].accepted  # its own nickname, in another case


def test_a_rename_changes_the_nickname_and_the_badge_follows_at_the_next_sync(
    conn: Conn, keyring: Keyring
) -> None:
    registered(conn, keyring, nickname="old-name")
    first_sync = conn.execute("SELECT sync_id::text AS id FROM syncs").fetchone()["id"]  # type: ignore[index]

    def reconcile(sync_id: str) -> dict[str, str]:
        with conn.transaction():
            conn.execute(
                "INSERT INTO accounts (account_id, org_id, name, org_path, tags, sync_id, stage)"
                " VALUES ('333333333333', %s, 'a', 'Root', %s, %s, 'harvested')"
                " ON CONFLICT (account_id) DO UPDATE SET sync_id = EXCLUDED.sync_id,"
                " stage = 'harvested'",
                (ORG, Jsonb({}), sync_id),
            )
        conn.commit()  # the stage reads and writes on connections of its own
        page = TagsHarvested(org_id=ORG, sync_id=sync_id, account_ids=("333333333333",))
        badges.reconcile(stage_deps(conn, keyring), page)
        rows = conn.execute("SELECT key, value FROM badges WHERE account_id = '333333333333'")
        return {row["key"]: row["value"] for row in rows}

    assert reconcile(first_sync)[badges.NICKNAME_BADGE] == "old-name"

    verdict, events = decide(conn, keyring, {"request_id": "u1", "org_id": ORG, "nickname": "new"})

    assert verdict.accepted
    org = load_organization(conn, keyring, ORG)
    assert org is not None and org.nickname == "new"
    assert reconcile(events[0].sync_id)[badges.NICKNAME_BADGE] == "new"


def test_a_rejected_request_writes_no_organization_sync_or_outbox_row(
    conn: Conn, keyring: Keyring
) -> None:
    bad_format = new_request("r1", org_role_arn="arn:aw:iam::111111111111:role/R")
    not_assumable = new_request("r2", **credential_fields(arn(name="DeniedReader")))

    verdicts = [decide(conn, keyring, raw)[0] for raw in (bad_format, not_assumable)]

    assert [v.accepted for v in verdicts] == [False, False]
    assert all(v.reasons for v in verdicts)
    assert [count(conn, t) for t in ("organizations", "syncs", "outbox")] == [0, 0, 0]
    assert count(conn, "registrations") == 2


def test_a_repeated_request_id_returns_the_first_verdict_without_a_new_sync(
    conn: Conn, keyring: Keyring
) -> None:
    first, events = decide(conn, keyring, new_request("r1"))
    assert first.accepted and len(events) == 1
    assume = Assume()

    # the same request again (another body under the same id: test_registration_hardening)
    again, more = decide(conn, keyring, new_request("r1"), assume)

    assert again == first and more == []
    assert assume.assumed == []
    assert count(conn, "syncs") == 1


def test_an_update_of_an_unknown_organization_is_rejected(conn: Conn, keyring: Keyring) -> None:
    verdict, events = decide(conn, keyring, {"request_id": "u1", "org_id": "o-nosuchorg1"})

    assert not verdict.accepted and events == []
    assert [p.field for p in verdict.reasons] == ["org_id"]
    assert count(conn, "organizations") == 0


def test_registering_an_organization_twice_is_rejected_pointing_at_update(
    conn: Conn, keyring: Keyring
) -> None:
    registered(conn, keyring)

    verdict, _ = decide(conn, keyring, new_request("r2", nickname="again"))

    assert not verdict.accepted and "orgsync update" in verdict.reasons[0].message


def test_a_role_of_another_organization_cannot_replace_this_ones(
    conn: Conn, keyring: Keyring
) -> None:
    registered(conn, keyring)
    update = {"request_id": "u1", "org_id": ORG, **credential_fields(arn("222222222222"))}

    verdict, _ = decide(conn, keyring, update)

    assert not verdict.accepted and "o-secondorg2" in verdict.reasons[0].message


def test_a_request_id_that_breaks_its_rule_is_not_the_key_its_verdict_is_stored_under(
    conn: Conn, keyring: Keyring
) -> None:
    verdict, _ = decide(conn, keyring, new_request("bad id\n" * 40))

    assert verdict.request_id == "fb-id" and not verdict.accepted
    assert "request_id" in {p.field for p in verdict.reasons}


def test_an_unreadable_message_is_recorded_as_a_rejected_request_with_its_reason(
    conn: Conn, keyring: Keyring
) -> None:
    unreadable = Problem("message", "the body is not JSON: Expecting value")
    verdict, events = decide(conn, keyring, RegistrationMessage("fb-id", None, unreadable))

    assert not verdict.accepted and events == []
    assert [(p.field, p.message) for p in verdict.reasons] == [
        ("message", "the body is not JSON: Expecting value")
    ]
    row = conn.execute("SELECT kind, request FROM registrations").fetchone()
    assert row == {"kind": "malformed", "request": {"unreadable": True}}


def test_a_malformed_request_stores_only_its_escaped_field_names(
    conn: Conn, keyring: Keyring
) -> None:
    raw = {"request_id": "m1", "external_id": 5, "bad\x00key": "LEAK-value"}

    verdict, _ = decide(conn, keyring, raw)

    assert not verdict.accepted
    row = conn.execute("SELECT request FROM registrations").fetchone()
    assert row is not None and "LEAK-value" not in str(row["request"])
    assert "'bad\\x00key'" in row["request"]["fields"]
