"""Badges converge on the rules applied to the final tags, whatever the order or repetition of
`tags-harvested` events, and the history replays to them."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from pipelines import badges
from pipelines.credentials import Keyring
from pipelines.orgs import seal_credentials
from pipelines.request_rules import Credentials

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


def harvest(conn: psycopg.Connection[dict[str, Any]], account: str, tags: dict[str, str]) -> str:
    """A new sync in which the account's harvested tags are `tags`; returns the sync id."""
    sync_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO syncs (sync_id, org_id, trigger) VALUES (%s, %s, 'test')", (sync_id, ORG)
    )
    conn.execute(
        "INSERT INTO accounts (account_id, org_id, name, org_path, tags, sync_id, stage)"
        " VALUES (%s, %s, 'n', 'Root/A', %s, %s, 'harvested') ON CONFLICT (account_id) DO UPDATE"
        " SET tags = EXCLUDED.tags, sync_id = EXCLUDED.sync_id, stage = 'harvested'",
        (account, ORG, Jsonb(tags), sync_id),
    )
    return sync_id


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=st.lists(tag_sets, min_size=1, max_size=5), data=st.data())
def test_badges_converge_whatever_the_order_and_repetition_of_events(
    conn: psycopg.Connection[dict[str, Any]],
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
        for sync_id in [*deliveries, syncs[-1], syncs[-1]]:
            badges.reconcile(conn, account, sync_id)
        conn.commit()

    final = badges.load(conn, account)
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
