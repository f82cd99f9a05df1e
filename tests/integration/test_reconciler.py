"""Badges converge on the rules applied to the final tags, whatever the order or repetition of
`tags-harvested` events, and the history replays to them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from orgsync.pipelines import badges
from orgsync.pipelines import harvest as harvester
from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.events import AccountsValidated, TagsHarvested
from orgsync.pipelines.orgs import seal_credentials
from orgsync.pipelines.request_rules import Credentials
from orgsync.services.commands import cli
from tests.support.stages import outbox_events, stage_deps

pytestmark = pytest.mark.integration
ORG = "o-reconcile01"
CREDS = Credentials(
    org_role_arn="arn:aws:iam::123456789012:role/R",
    org_session_name="s1",
    org_session_duration=900,
    member_role_name="M",
    member_session_name="s2",
    member_session_duration=900,
)

keys = st.sampled_from(["env", "team", "owner", "system.cloud_organization", "cloud_org_path", "x"])
tag_sets = st.dictionaries(keys, st.sampled_from(["", "a", "b", "prod"]), max_size=5)


@pytest.fixture
def org(conn: psycopg.Connection[dict[str, Any]], keyring: Keyring) -> str:
    sealed = seal_credentials(keyring, ORG, CREDS)
    conn.execute(
        "INSERT INTO organizations (org_id, nickname, management_account_id, partition,"
        " credentials_key_id, credentials, auto_badge) VALUES (%s, 'r', '123456789012', 'aws',"
        " %s, %s, true)",
        (ORG, sealed.key_id, sealed.blob),
    )
    conn.commit()
    return ORG


def reconciled(
    conn: psycopg.Connection[dict[str, Any]], keyring: Keyring, account: str, sync_id: str
) -> None:
    conn.commit()
    event = TagsHarvested(org_id=ORG, sync_id=sync_id, account_ids=(account,))
    badges.reconcile(stage_deps(conn, keyring), event)


def harvest(conn: psycopg.Connection[dict[str, Any]], account: str, tags: dict[str, str]) -> str:
    """A new sync in which the account's harvested tags are `tags`; returns the sync id."""
    sync_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO syncs (sync_id, org_id, trigger) VALUES (%s, %s, 'test')", (sync_id, ORG)
    )
    conn.execute(
        "INSERT INTO accounts (account_id, org_id, name, org_path, tags, sync_id, stage)"
        " VALUES (%s, %s, 'n', 'Root/A', %s, %s, 'harvested') ON CONFLICT (account_id) DO UPDATE"
        " SET org_id = EXCLUDED.org_id, tags = EXCLUDED.tags, sync_id = EXCLUDED.sync_id,"
        " stage = 'harvested'",
        (account, ORG, Jsonb(tags), sync_id),
    )
    return sync_id


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=st.lists(tag_sets, min_size=1, max_size=5), data=st.data())
def test_badges_converge_whatever_the_order_and_repetition_of_events(
    conn: psycopg.Connection[dict[str, Any]],
    keyring: Keyring,
    org: str,
    history: list[dict[str, str]],
    data: st.DataObject,
) -> None:
    account = f"{uuid.uuid4().int % 10**12:012d}"
    syncs = []
    for tags in history:
        syncs.append(harvest(conn, account, tags))
        # every event so far may arrive again, in any order, duplicated
        deliveries = data.draw(st.lists(st.sampled_from(syncs), max_size=6))
        conn.commit()
        for sync_id in [*deliveries, syncs[-1], syncs[-1]]:
            event = TagsHarvested(org_id=ORG, sync_id=sync_id, account_ids=(account,))
            badges.reconcile(stage_deps(conn, keyring), event)

    final = badges.badges_of(conn, [account])[account]
    expected, _ = badges.desired_badges(
        {}, history[-1], org_id=ORG, nickname="r", org_path="Root/A", auto_badge=True
    )
    assert final == expected
    replayed: dict[str, str] = {}
    for row in conn.execute(
        "SELECT key, action, new_value FROM badge_history WHERE account_id = %s ORDER BY id",
        (account,),
    ):
        if row["action"] == "deleted":
            del replayed[row["key"]]
        else:
            replayed[row["key"]] = row["new_value"]
    assert replayed == {k: b.value for k, b in final.items()}


# ---- local edits: `orgsync badges add / delete` ----------------------------------------------


@pytest.fixture
def orgsync(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("ORGSYNC_DATABASE_URL", database_url)

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_a_standalone_accounts_badges_are_edited_by_hand_with_history(
    conn: psycopg.Connection[dict[str, Any]], orgsync: Any
) -> None:
    conn.execute("INSERT INTO accounts (account_id, name) VALUES ('210987654321', 'lonely')")
    conn.commit()

    assert orgsync("badges", "add", "210987654321", "team=blue", "owner=me")[0] == 0
    assert orgsync("badges", "add", "210987654321", "team=green")[1].splitlines() == [
        "updated team=green",
        "1 badge change(s) on account 210987654321",
    ]
    assert orgsync("badges", "delete", "210987654321", "owner")[0] == 0

    code, out, _ = orgsync("badges", "210987654321", "--json")
    assert code == 0
    assert [(b["key"], b["value"], b["autogenerated"]) for b in json.loads(out)] == [
        ("team", "green", False)
    ]
    history = json.loads(orgsync("badges", "210987654321", "--history", "--json")[1])
    assert [(h["key"], h["action"], h["old_value"], h["new_value"]) for h in history] == [
        ("team", "created", None, "blue"),
        ("owner", "created", None, "me"),
        ("team", "updated", "blue", "green"),
        ("owner", "deleted", "me", None),
    ]
    assert {h["sync_id"] for h in history} == {None}  # by hand, not by a sync


def test_a_tag_badge_of_a_managed_account_cannot_be_deleted_or_added_by_hand(
    conn: psycopg.Connection[dict[str, Any]], keyring: Keyring, org: str, orgsync: Any
) -> None:
    account = "123456789012"
    reconciled(conn, keyring, account, harvest(conn, account, {"env": "prod"}))
    conn.commit()
    before = badges.badges_of(conn, [account])[account]

    code, _, err = orgsync("badges", "delete", account, "env", "cloud_org_path")
    assert code == 2
    assert "badge 'env' comes from the account's tag: delete the tag in AWS" in err
    assert "badge 'cloud_org_path' belongs to orgsync" in err
    code, _, err = orgsync("badges", "add", account, "team=blue")
    assert code == 2 and f"managed by organization {ORG} (r)" in err
    assert badges.badges_of(conn, [account])[account] == before
    assert orgsync("badges", "add", "999999999999", "a=b")[2] == (
        "orgsync: no account 999999999999 (see `orgsync accounts`)\n"
    )


def test_a_badge_added_by_hand_gives_way_to_the_tags_once_an_organization_adopts_the_account(
    conn: psycopg.Connection[dict[str, Any]], keyring: Keyring, org: str, orgsync: Any
) -> None:
    conn.execute("INSERT INTO accounts (account_id, name) VALUES ('123456789012', 'adopted')")
    conn.commit()
    assert orgsync("badges", "add", "123456789012", "owner=me", "env=dev")[0] == 0

    reconciled(conn, keyring, "123456789012", harvest(conn, "123456789012", {"env": "prod"}))

    found = badges.badges_of(conn, ["123456789012"])["123456789012"]
    assert "owner" not in found  # no tag: deleted, as the seed says
    assert found["env"] == badges.Badge("env", "prod", True)


# ---- stage 1, the harvester: tags overwritten only when AWS's differ -------------------------


class Tagged:
    """ListTagsForResource answering each account's tags from a dict."""

    def __init__(self, tags: dict[str, dict[str, str]]) -> None:
        self.tags = tags

    def get_paginator(self, name: str) -> Any:
        return self

    def paginate(self, ResourceId: str) -> list[dict[str, Any]]:
        return [{"Tags": [{"Key": k, "Value": v} for k, v in self.tags[ResourceId].items()]}]


def test_the_harvester_stores_tags_only_when_they_differ_and_acts_once_per_sync(
    conn: psycopg.Connection[dict[str, Any]], keyring: Keyring, org: str
) -> None:
    account, stored = "123456789012", {"env": "prod"}
    for aws_tags, changed in (({"env": "prod"}, 0), ({"env": "dev", "team": "a"}, 1)):
        sync_id = harvest(conn, account, stored)
        conn.execute("UPDATE accounts SET stage = 'validated' WHERE account_id = %s", (account,))
        conn.execute("DELETE FROM outbox")
        conn.commit()
        deps = stage_deps(conn, keyring, organizations=lambda o, t=aws_tags: Tagged({account: t}))
        event = AccountsValidated(org_id=ORG, sync_id=sync_id, account_ids=(account,))
        result = harvester.harvest(deps, event)
        assert result.counts["changed"] == changed
        assert harvester.harvest(deps, event).outcome.value == "skipped"  # a duplicate: nothing
        assert outbox_events(conn) == [
            TagsHarvested(org_id=ORG, sync_id=sync_id, account_ids=(account,))
        ]
        row = conn.execute("SELECT tags FROM accounts WHERE account_id = %s", (account,)).fetchone()
        assert row is not None and row["tags"] == aws_tags
        stored = aws_tags
