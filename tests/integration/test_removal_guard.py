"""Issue 18, finding 5 (third part): a complete walk that would remove more than 20 % of an
organization's accounts removes nothing, holds its sync with the reason, and waits for
`orgsync sync ORG --confirm-removals`. Before, an OU id that exists nowhere in `limit_ou_ids`
removed every account as out_of_scope at the next complete walk."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from orgsync.pipelines import discovery
from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.events import OrgRegistered
from orgsync.pipelines.registration import start_sync
from orgsync.pipelines.stage import Outcome
from orgsync.services.testing.moto_aws import SimulatedAws
from tests.support.discovery import AwsOrg, accounts, live, organizations_client, register
from tests.support.stages import stage_deps

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[dict[str, Any]]


def guarded_sync(conn: Conn, keyring: Keyring, client: Any, org_id: str, **start: Any) -> str:
    """One discovery with the default share (the Deps default, as the workers run it) and no
    minimum, since these organizations are small."""
    sync_id = start_sync(conn, org_id, "test", **start).sync_id
    conn.commit()
    deps = stage_deps(conn, keyring, organizations=lambda org: client, removal_min=0)
    result = discovery.discover(deps, OrgRegistered(org_id=org_id, sync_id=sync_id))
    assert result.outcome is Outcome.DONE
    conn.commit()
    return sync_id


def sync_row(conn: Conn, sync_id: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT complete, held, counts FROM syncs WHERE sync_id = %s", (sync_id,)
    ).fetchone()
    assert row is not None
    return row


def test_a_walk_that_would_remove_most_accounts_is_held_until_confirmed(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    client = organizations_client(aws)
    register(conn, keyring, org)
    guarded_sync(conn, keyring, client, org.org_id)
    everyone = live(conn)
    assert len(everyone) == 10

    # a scope that leaves 8 of 10 accounts out
    register(conn, keyring, org, limit_ou_ids=[org.ids["Root/Finance"]])
    held = guarded_sync(conn, keyring, client, org.org_id)

    row = sync_row(conn, held)
    assert row["complete"] is True
    assert row["held"].startswith("this walk would remove 8 of 10 accounts (80%)")
    assert "--confirm-removals" in row["held"]
    assert row["counts"]["removed"] == {}
    assert live(conn) == everyone  # nothing removed

    confirmed = guarded_sync(conn, keyring, client, org.org_id, confirm_removals=True)

    row = sync_row(conn, confirmed)
    assert row["held"] is None and row["counts"]["removed"] == {"out_of_scope": 8}
    assert live(conn) == {tree["fin"], tree["payroll"]}
    assert accounts(conn)[tree["eng"]]["status_reason"] == "out_of_scope"


def test_a_removal_within_the_limit_goes_ahead(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    client = organizations_client(aws)
    register(conn, keyring, org)
    guarded_sync(conn, keyring, client, org.org_id)

    register(conn, keyring, org, exclude_prefixes=["dev-deep"])  # 1 of 10
    sync_id = guarded_sync(conn, keyring, client, org.org_id)

    row = sync_row(conn, sync_id)
    assert row["held"] is None and row["counts"]["removed"] == {"name_prefix:dev-deep": 1}
    assert tree["dev-deep"] not in live(conn)
