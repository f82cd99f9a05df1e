"""Every committed change of the inventory is one event for other systems, written in the
change's own transaction (migration 0013's triggers), whichever stage or command made it."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from orgsync.pipelines import badges, discovery
from orgsync.pipelines.badges import Badge, Change
from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.events import AccountsDiscovered, OrgRegistered
from orgsync.pipelines.outbound import EVENT_TYPES, cloud_event
from orgsync.pipelines.registration import start_sync
from orgsync.pipelines.sql import load
from orgsync.pipelines.stage import Outcome
from orgsync.pipelines.validation import Validation, ValidationStatus, record
from orgsync.schema import event_schema
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.use_cases import standalone
from tests.support.discovery import AwsOrg, live, organizations_client, register
from tests.support.stages import stage_deps

Conn = psycopg.Connection[dict[str, Any]]
ADAPTERS = load("orgsync.services.adapters")
SOLO = standalone.AccountCredentials(role_arn="arn:aws:iam::123456789012:role/OrgSync")


def walk(conn: Conn, keyring: Keyring, aws: SimulatedAws, org_id: str) -> str:
    """One discovery by the stage function; the sync's id."""
    sync_id = start_sync(conn, org_id, "test").sync_id
    conn.commit()
    deps = stage_deps(
        conn, keyring, organizations=lambda org: organizations_client(aws), removal_limit=1.0
    )
    result = discovery.discover(deps, OrgRegistered(org_id=org_id, sync_id=sync_id))
    assert result.outcome is Outcome.DONE
    return sync_id


def events(conn: Conn, kind: str | None = None) -> list[dict[str, Any]]:
    conn.commit()
    rows = conn.execute("SELECT * FROM outbound_events ORDER BY seq").fetchall()
    return [cloud_event(r) for r in rows if kind is None or r["type"] == kind]


def by_subject(found: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in found:
        grouped.setdefault(event["subject"], []).append(event["data"])
    return grouped


def test_a_first_walk_adds_each_account_once_and_a_second_walk_adds_nothing(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    register(conn, keyring, org)
    walk(conn, keyring, aws, org.org_id)
    added = by_subject(events(conn, "orgsync.account.added"))

    assert set(added) == live(conn)
    assert all(len(found) == 1 for found in added.values())
    core = added[tree["core"]][0]
    assert core["org_path"] == "Root/Engineering/Prod/Apps/Core"
    assert core["status"] == "pending" and core["returned"] is False
    [registered] = events(conn, "orgsync.organization.registered")
    assert registered["source"] == f"orgsync/{org.org_id}" and "subject" not in registered

    before = len(events(conn))
    walk(conn, keyring, aws, org.org_id)
    assert len(events(conn)) == before


def test_a_move_and_a_departure_are_events_with_the_old_and_new_place_and_the_reason(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    register(conn, keyring, org)
    walk(conn, keyring, aws, org.org_id)
    org.move(tree["dev"], "Root/Finance")
    org.remove(tree["top"])
    walk(conn, keyring, aws, org.org_id)

    [moved] = by_subject(events(conn, "orgsync.account.moved"))[tree["dev"]]
    assert (moved["old_path"], moved["new_path"]) == ("Root/Engineering/Dev", "Root/Finance")
    assert moved["new_parent_id"] == org.ids["Root/Finance"]
    [removed] = by_subject(events(conn, "orgsync.account.removed"))[tree["top"]]
    assert removed == {
        "account_id": tree["top"],
        "reason": "left_organization",
        "old_status": "pending",
        "sequence": removed["sequence"],
    }


def test_a_failed_validation_is_a_status_change_carrying_the_aws_error_code(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    register(conn, keyring, org)
    sync_id = walk(conn, keyring, aws, org.org_id)
    page = AccountsDiscovered(
        org_id=org.org_id, sync_id=sync_id, account_ids=(tree["top"], tree["fin"])
    )
    failed = Validation(ValidationStatus.ASSUME_ROLE_FAILED, "AccessDenied", "not authorized")
    with conn.transaction():
        record(conn, page, {tree["top"]: failed, tree["fin"]: Validation(ValidationStatus.OK)})

    changed = by_subject(events(conn, "orgsync.account.status_changed"))
    assert changed[tree["top"]] == [
        {
            "account_id": tree["top"],
            "old_status": "pending",
            "new_status": "assume_role_failed",
            "reason": "AccessDenied: not authorized",
            "error_code": "AccessDenied",
            "sequence": changed[tree["top"]][0]["sequence"],
        }
    ]
    assert changed[tree["fin"]][0]["new_status"] == "ok"
    assert changed[tree["fin"]][0]["error_code"] is None


def test_the_badge_changes_of_one_transaction_are_one_event_with_the_badges_after(
    conn: Conn, keyring: Keyring
) -> None:
    standalone.add(conn, keyring, "123456789012", SOLO, "solo")
    badges.edit(conn, "123456789012", {"team": "red", "cost": "1"}, [])
    conn.commit()
    changes = [
        Change("team", "updated", Badge("team", "red", False), Badge("team", "blue", True)),
        Change("cost", "deleted", Badge("cost", "1", False), None),
        Change("env", "created", None, Badge("env", "prod", True)),
    ]
    with conn.transaction():
        badges.apply(conn, [("123456789012", c) for c in changes], None)

    first, second = by_subject(events(conn, "orgsync.account.badges_changed"))["123456789012"]
    assert [b["key"] for b in first["added"]] == ["cost", "team"]
    assert second["added"] == [{"key": "env", "value": "prod", "autogenerated": True}]
    assert second["updated"] == [
        {"key": "team", "old_value": "red", "value": "blue", "autogenerated": True}
    ]
    assert second["deleted"] == [{"key": "cost", "old_value": "1"}]
    assert second["badges"] == [
        {"key": "env", "value": "prod", "autogenerated": True},
        {"key": "team", "value": "blue", "autogenerated": True},
    ]
    assert second["sequence"] > first["sequence"]


def test_a_change_undone_in_the_same_transaction_is_no_event(conn: Conn, keyring: Keyring) -> None:
    standalone.add(conn, keyring, "123456789012", SOLO, "solo")
    badges.edit(conn, "123456789012", {"team": "red"}, [])
    conn.commit()
    before = len(events(conn))
    with conn.transaction():
        conn.execute("UPDATE badges SET value = 'blue' WHERE key = 'team'")
        conn.execute("UPDATE badges SET value = 'red' WHERE key = 'team'")
    assert len(events(conn)) == before


def test_an_organization_update_names_what_changed_and_never_carries_a_credential(
    conn: Conn, keyring: Keyring, org: AwsOrg
) -> None:
    register(conn, keyring, org)
    register(conn, keyring, org)  # the same again: credentials resealed, nothing else
    register(conn, keyring, org, exclude_prefixes=["sandbox-"])

    [updated] = events(conn, "orgsync.organization.updated")
    assert updated["data"]["changed"] == ["exclude_prefixes"]
    assert updated["data"]["exclude_prefixes"] == ["sandbox-"]
    for event in events(conn):
        assert not {"credentials", "credentials_key_id"} & set(event["data"])
        assert "OrgSyncReadOnly" not in str(event)


def test_a_finished_sync_is_announced_once_with_its_mode_and_counts(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    register(conn, keyring, org)
    sync_id = walk(conn, keyring, aws, org.org_id)
    conn.execute(ADAPTERS["announce_completed_syncs"])
    assert events(conn, "orgsync.sync.completed") == []  # its accounts are still on their way

    conn.execute("UPDATE accounts SET stage = 'reconciled' WHERE sync_id = %s", (sync_id,))
    conn.execute(ADAPTERS["announce_completed_syncs"])
    conn.execute(ADAPTERS["announce_completed_syncs"])
    [completed] = events(conn, "orgsync.sync.completed")
    data = completed["data"]
    assert (data["sync_id"], data["mode"], data["complete"]) == (sync_id, "full", True)
    assert data["counts"]["imported"] == len(live(conn))
    assert data["statuses"] == {"pending": len(live(conn))}


@pytest.fixture
def every_kind(conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg) -> None:
    tree = {name: org.account(name, path) for name, path in [("a", "Root/X"), ("b", "Root")]}
    register(conn, keyring, org)
    sync_id = walk(conn, keyring, aws, org.org_id)
    page = AccountsDiscovered(org_id=org.org_id, sync_id=sync_id, account_ids=(tree["a"],))
    with conn.transaction():
        failed = Validation(ValidationStatus.ASSUME_ROLE_FAILED, "AccessDenied", "no")
        record(conn, page, {tree["a"]: failed})
        badges.apply(conn, [(tree["a"], Change("k", "created", None, Badge("k", "v", True)))], None)
    org.move(tree["a"], "Root")
    org.remove(tree["b"])
    register(conn, keyring, org, auto_remove_suspended=True)
    sync_id = walk(conn, keyring, aws, org.org_id)
    conn.execute("UPDATE accounts SET stage = 'reconciled' WHERE sync_id = %s", (sync_id,))
    conn.execute(ADAPTERS["announce_completed_syncs"])
    conn.commit()


@pytest.mark.usefixtures("every_kind")
def test_every_kind_of_event_matches_its_json_schema(conn: Conn) -> None:
    found = events(conn)
    assert {e["type"] for e in found} == set(EVENT_TYPES)
    envelope = Draft202012Validator(event_schema("cloudevent"), format_checker=FormatChecker())
    for event in found:
        envelope.validate(event)
        schema = event_schema(event["type"])
        Draft202012Validator(schema, format_checker=FormatChecker()).validate(event["data"])
