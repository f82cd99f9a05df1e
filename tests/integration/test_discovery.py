"""Discovery on real PostgreSQL against a moto organization with OUs four levels deep.

Each test runs the stage function `discover` itself, as the actor does, so the cases the issue
lists (scope, exclusions, suspended states, moves, departures, failed and throttled walks,
standalone accounts) are proved on the stage, without a broker.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from orgsync.pipelines import discovery
from orgsync.pipelines.credentials import Keyring, Sealed, open_json
from orgsync.pipelines.events import AccountsDiscovered, AccountsValidated, Event, OrgRegistered
from orgsync.pipelines.registration import start_sync
from orgsync.pipelines.stage import Outcome
from orgsync.services.commands import cli
from orgsync.services.errors import UserError
from orgsync.services.read_models import inventory
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import MANAGEMENT_ACCOUNT_ID
from orgsync.services.use_cases import standalone
from tests.support.discovery import (
    DEEP,
    AwsOrg,
    accounts,
    live,
    organizations_client,
    register,
)
from tests.support.stages import outbox_events, stage_deps

Conn = psycopg.Connection[dict[str, Any]]


# ---- a simulated AWS organization -----------------------------------------------------------


# ---- the organization in PostgreSQL, and one sync the way the actor runs it -----------------


@dataclass
class Sync:
    sync_id: str
    counts: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def discovered(self) -> set[str]:
        return {a for e in self.events if isinstance(e, AccountsDiscovered) for a in e.account_ids}

    def suspended(self) -> set[str]:
        """Suspended accounts skip validation: discovery sends them straight to harvesting."""
        return {a for e in self.events if isinstance(e, AccountsValidated) for a in e.account_ids}


def sync(conn: Conn, keyring: Keyring, client: Any, org_id: str) -> Sync:
    """One discovery by the stage function, its events read back from the outbox."""
    run = Sync(start_sync(conn, org_id, "test").sync_id, {})
    conn.execute("DELETE FROM outbox")
    conn.commit()
    # these tests are about what a walk removes: the removal guard, which would hold most of
    # them, has its own (tests/integration/test_removal_guard.py)
    deps = stage_deps(
        conn,
        keyring,
        organizations=lambda org: client,
        sleep=run.sleeps.append,
        removal_limit=1.0,
    )
    result = discovery.discover(deps, OrgRegistered(org_id=org_id, sync_id=run.sync_id))
    assert result.outcome is Outcome.DONE
    run.counts = result.counts["counts"]
    run.events = outbox_events(conn)
    conn.commit()
    return run


def excluded(conn: Conn) -> dict[str, str]:
    rows = conn.execute("SELECT account_id, reason FROM excluded_accounts").fetchall()
    return {r["account_id"]: r["reason"] for r in rows}


def last_sync(conn: Conn) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM syncs ORDER BY started_at DESC LIMIT 1").fetchone()
    assert row is not None
    return row


# ---- the walk and the paths -----------------------------------------------------------------


def test_accounts_four_levels_deep_are_imported_with_their_org_path(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    register(conn, keyring, org)
    run = sync(conn, keyring, organizations_client(aws), org.org_id)

    stored = accounts(conn)
    assert stored[tree["core"]]["org_path"] == DEEP
    assert stored[tree["payroll"]]["org_path"] == "Root/Finance/Payroll/Europe/Paris"
    assert stored[tree["top"]]["org_path"] == "Root"
    assert set(tree.values()) | {MANAGEMENT_ACCOUNT_ID} == live(conn) == run.discovered()
    assert {row["status"] for row in stored.values()} == {"pending"}
    assert run.counts == {
        "seen": 10,
        "imported": 10,
        "suspended": 0,
        "excluded": {},
        "removed": {},
    }
    assert last_sync(conn)["complete"] is True


# ---- scope ----------------------------------------------------------------------------------


def test_a_mid_level_scope_imports_everything_below_it_at_any_depth_and_the_rest_is_out_of_scope(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    register(conn, keyring, org, limit_ou_ids=[org.ids["Root/Engineering/Prod"]])
    run = sync(conn, keyring, organizations_client(aws), org.org_id)

    below = {tree["prod"], tree["apps"], tree["core"]}
    assert live(conn) == run.discovered() == below
    outside = set(tree.values()) - below | {MANAGEMENT_ACCOUNT_ID}
    assert excluded(conn) == dict.fromkeys(outside, "out_of_scope")
    assert run.counts["excluded"] == {"out_of_scope": len(outside)}
    assert run.counts["imported"] == 3 and run.counts["seen"] == 10


def test_several_scope_ids_import_the_union_of_their_subtrees(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    scope = [org.ids["Root/Engineering/Prod/Apps"], org.ids["Root/Finance/Payroll"]]
    register(conn, keyring, org, limit_ou_ids=scope)
    sync(conn, keyring, organizations_client(aws), org.org_id)

    assert live(conn) == {tree["apps"], tree["core"], tree["payroll"]}
    assert set(excluded(conn).values()) == {"out_of_scope"}


def test_a_root_id_in_scope_means_the_whole_organization(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    register(conn, keyring, org, limit_ou_ids=[org.root_id])
    sync(conn, keyring, organizations_client(aws), org.org_id)

    assert live(conn) == set(tree.values()) | {MANAGEMENT_ACCOUNT_ID}
    assert excluded(conn) == {}


def test_a_filter_change_putting_accounts_out_of_scope_removes_them_with_that_reason(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    client = organizations_client(aws)
    register(conn, keyring, org)
    sync(conn, keyring, client, org.org_id)

    register(conn, keyring, org, limit_ou_ids=[org.ids["Root/Finance"]])
    run = sync(conn, keyring, client, org.org_id)

    stored = accounts(conn)
    assert live(conn) == {tree["fin"], tree["payroll"]}
    for name in ("top", "eng", "core", "dev-deep"):
        assert stored[tree[name]]["status"] == "removed"
        assert stored[tree[name]]["status_reason"] == "out_of_scope"
    assert run.counts["removed"] == {"out_of_scope": 8}
    assert run.counts["excluded"] == {"out_of_scope": 8}


def test_an_account_back_in_scope_returns_as_pending(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    client = organizations_client(aws)
    register(conn, keyring, org, limit_ou_ids=[org.ids["Root/Finance"]])
    sync(conn, keyring, client, org.org_id)
    register(conn, keyring, org, limit_ou_ids=[org.ids["Root/Engineering"]])
    sync(conn, keyring, client, org.org_id)
    assert accounts(conn)[tree["fin"]]["status"] == "removed"

    register(conn, keyring, org)
    run = sync(conn, keyring, client, org.org_id)

    returned = accounts(conn)[tree["fin"]]
    assert (returned["status"], returned["status_reason"]) == ("pending", None)
    assert tree["fin"] in run.discovered()
    assert excluded(conn) == {}


# ---- exclusion prefixes ---------------------------------------------------------------------


def test_an_exclusion_prefix_drops_matching_names_at_any_depth_with_the_prefix_as_reason(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    sandbox = org.account("sandbox-alice", DEEP)
    scratch = org.account("scratch-bob", "Root/Finance/Payroll")
    register(conn, keyring, org, exclude_prefixes=["sandbox-", "scratch-"])
    run = sync(conn, keyring, organizations_client(aws), org.org_id)

    assert excluded(conn) == {sandbox: "name_prefix:sandbox-", scratch: "name_prefix:scratch-"}
    assert live(conn) == set(tree.values()) | {MANAGEMENT_ACCOUNT_ID}
    assert run.counts["excluded"] == {"name_prefix:sandbox-": 1, "name_prefix:scratch-": 1}


def test_a_new_exclusion_prefix_removes_an_imported_account_with_that_reason(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    client = organizations_client(aws)
    register(conn, keyring, org)
    sync(conn, keyring, client, org.org_id)

    register(conn, keyring, org, exclude_prefixes=["pay"])
    run = sync(conn, keyring, client, org.org_id)

    payroll = accounts(conn)[tree["payroll"]]
    assert (payroll["status"], payroll["status_reason"]) == ("removed", "name_prefix:pay")
    assert run.counts["removed"] == {"name_prefix:pay": 1}


# ---- suspended accounts ---------------------------------------------------------------------

# (State, Status) as AWS reports them; the last has no State and falls back to Status.
SUSPENDED_REPORTS = [
    pytest.param("SUSPENDED", None, id="SUSPENDED"),
    pytest.param("PENDING_CLOSURE", None, id="PENDING_CLOSURE"),
    pytest.param("CLOSED", None, id="CLOSED"),
    pytest.param(None, "SUSPENDED", id="Status-only"),
]


@pytest.mark.parametrize(("state", "status"), SUSPENDED_REPORTS)
def test_a_suspended_account_is_excluded_and_removed_when_auto_remove_is_on(
    conn: Conn,
    keyring: Keyring,
    aws: SimulatedAws,
    org: AwsOrg,
    tree: dict[str, str],
    state: str | None,
    status: str | None,
) -> None:
    client = organizations_client(aws)
    register(conn, keyring, org, auto_remove_suspended=True)
    fresh = org.account("fresh", DEEP)
    org.set_state(fresh, state, status)
    sync(conn, keyring, client, org.org_id)
    assert excluded(conn) == {fresh: "suspended"}
    assert fresh not in accounts(conn)

    org.set_state(tree["core"], state, status)
    run = sync(conn, keyring, client, org.org_id)

    core = accounts(conn)[tree["core"]]
    assert (core["status"], core["status_reason"]) == ("removed", "suspended")
    assert excluded(conn) == {fresh: "suspended", tree["core"]: "suspended"}
    assert run.counts["removed"] == {"suspended": 1}
    assert run.counts["excluded"] == {"suspended": 2}


@pytest.mark.parametrize(("state", "status"), SUSPENDED_REPORTS)
def test_a_suspended_account_is_kept_as_suspended_and_not_validated_when_auto_remove_is_off(
    conn: Conn,
    keyring: Keyring,
    aws: SimulatedAws,
    org: AwsOrg,
    tree: dict[str, str],
    state: str | None,
    status: str | None,
) -> None:
    client = organizations_client(aws)
    register(conn, keyring, org)
    sync(conn, keyring, client, org.org_id)
    org.set_state(tree["core"], state, status)

    run = sync(conn, keyring, client, org.org_id)

    core = accounts(conn)[tree["core"]]
    assert core["status"] == "suspended"
    assert core["aws_state"] == (state or status)
    assert run.suspended() == {tree["core"]}
    assert tree["core"] not in run.discovered()
    assert run.counts["suspended"] == 1 and run.counts["removed"] == {}
    assert excluded(conn) == {}


def test_a_reactivated_account_returns_to_pending(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    client = organizations_client(aws)
    register(conn, keyring, org)
    org.set_state(tree["core"], "SUSPENDED")
    sync(conn, keyring, client, org.org_id)
    assert accounts(conn)[tree["core"]]["status"] == "suspended"

    org.set_state(tree["core"], "ACTIVE")
    run = sync(conn, keyring, client, org.org_id)

    core = accounts(conn)[tree["core"]]
    assert (core["status"], core["status_reason"]) == ("pending", None)
    assert tree["core"] in run.discovered()


# ---- moves and departures -------------------------------------------------------------------


def test_an_account_moved_to_another_ou_gets_its_new_org_path(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    client = organizations_client(aws)
    register(conn, keyring, org)
    sync(conn, keyring, client, org.org_id)
    conn.execute("UPDATE accounts SET status = 'ok'")
    conn.commit()

    org.move(tree["core"], "Root/Finance/Payroll/Europe")
    sync(conn, keyring, client, org.org_id)

    core = accounts(conn)[tree["core"]]
    assert core["org_path"] == "Root/Finance/Payroll/Europe"
    assert core["status"] == "ok"


def test_an_account_that_leaves_the_organization_is_removed_after_a_complete_walk(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    client = organizations_client(aws)
    register(conn, keyring, org)
    sync(conn, keyring, client, org.org_id)

    org.remove(tree["core"])
    run = sync(conn, keyring, client, org.org_id)

    core = accounts(conn)[tree["core"]]
    assert (core["status"], core["status_reason"]) == ("removed", "left_organization")
    assert run.counts["removed"] == {"left_organization": 1}
    assert live(conn) == set(tree.values()) - {tree["core"]} | {MANAGEMENT_ACCOUNT_ID}


# ---- a walk and a newer sync -----------------------------------------------------------------


def syncs_of_accounts(conn: Conn) -> set[str]:
    return {r["s"] for r in conn.execute("SELECT DISTINCT sync_id::text AS s FROM accounts")}


def test_a_walk_delivered_again_after_a_newer_sync_walked_gives_way_and_removes_nothing(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    client = organizations_client(aws)
    register(conn, keyring, org)
    first = sync(conn, keyring, client, org.org_id)
    first_row = last_sync(conn)
    second = sync(conn, keyring, client, org.org_id)
    org.remove(tree["core"])  # the old walk would see it gone
    conn.execute("DELETE FROM outbox")  # the second walk's pages
    conn.commit()

    deps = stage_deps(conn, keyring, organizations=lambda org: client, removal_limit=1.0)
    result = discovery.discover(deps, OrgRegistered(org_id=org.org_id, sync_id=first.sync_id))

    assert result.outcome is Outcome.SKIPPED
    assert result.reason == f"sync {second.sync_id} started after this one and took over its walk"
    assert syncs_of_accounts(conn) == {second.sync_id}
    assert live(conn) == set(tree.values()) | {MANAGEMENT_ACCOUNT_ID}
    assert outbox_events(conn) == []
    row = conn.execute("SELECT * FROM syncs WHERE sync_id = %s", (first.sync_id,)).fetchone()
    assert row is not None
    assert (row["walked_at"], row["counts"], row["error"]) == (
        first_row["walked_at"],
        first_row["counts"],
        None,
    )


def test_an_older_walk_closing_as_a_newer_sync_walks_removes_none_of_the_newer_ones_accounts(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    """The cleanup's own guard, for a newer sync that took accounts after the walk's last look."""
    sandbox = org.account("sandbox-alice", DEEP)
    register(conn, keyring, org, exclude_prefixes=["sandbox-"])
    first = start_sync(conn, org.org_id, "test").sync_id
    conn.commit()
    sync(conn, keyring, organizations_client(aws), org.org_id)  # a newer sync takes everything

    discovery.finish(conn, org.org_id, first, Counter(), None, removal_limit=1.0)
    conn.commit()

    assert live(conn) == set(tree.values()) | {MANAGEMENT_ACCOUNT_ID}
    assert excluded(conn) == {sandbox: "name_prefix:sandbox-"}


class StartingASyncOnFirstCall:
    """The real client; its first ListAccountsForParent starts another sync of the organization
    first, as a scheduler or a user would while the walk runs."""

    def __init__(self, client: Any, conn: Conn, org_id: str) -> None:
        self.client, self.conn, self.org_id = client, conn, org_id
        self.started: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def list_accounts_for_parent(self, **params: Any) -> Any:
        if self.started is None:
            self.started = start_sync(self.conn, self.org_id, "test").sync_id
            self.conn.commit()
        return self.client.list_accounts_for_parent(**params)


def test_a_walk_gives_way_to_a_sync_started_while_it_walks_and_is_closed_incomplete(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg
) -> None:
    register(conn, keyring, org)
    first = start_sync(conn, org.org_id, "test").sync_id
    conn.execute("DELETE FROM outbox")
    conn.commit()
    client = StartingASyncOnFirstCall(organizations_client(aws), conn, org.org_id)

    deps = stage_deps(conn, keyring, organizations=lambda org: client)
    result = discovery.discover(deps, OrgRegistered(org_id=org.org_id, sync_id=first))

    assert result.outcome is Outcome.SKIPPED and client.started is not None
    assert accounts(conn) == {} and outbox_events(conn) == []
    row = conn.execute("SELECT * FROM syncs WHERE sync_id = %s", (first,)).fetchone()
    assert row is not None and row["walked_at"] is not None
    assert (row["complete"], row["error"]) == (False, result.reason)
    assert result.reason == f"sync {client.started} started after this one and took over its walk"


# ---- failed, paged and throttled walks ------------------------------------------------------


class FailingOnCall:
    """The real client, except that its n-th ListAccountsForParent fails as AWS would."""

    def __init__(self, client: Any, nth: int) -> None:
        self.client, self.nth, self.calls = client, nth, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def list_accounts_for_parent(self, **params: Any) -> Any:
        self.calls += 1
        if self.calls == self.nth:
            raise ClientError(
                {
                    "Error": {"Code": "AccessDeniedException", "Message": "denied by an SCP"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                "ListAccountsForParent",
            )
        return self.client.list_accounts_for_parent(**params)


def test_a_walk_that_fails_halfway_keeps_every_prior_account_and_marks_the_sync_incomplete(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    client = organizations_client(aws)
    register(conn, keyring, org)
    sync(conn, keyring, client, org.org_id)
    conn.execute("UPDATE accounts SET status = 'ok' WHERE account_id = %s", (tree["eng"],))
    conn.commit()
    before = accounts(conn)
    org.remove(tree["payroll"])  # would be removed, if the walk were believed

    run = sync(conn, keyring, FailingOnCall(client, nth=2), org.org_id)

    after = accounts(conn)
    assert after.keys() == before.keys()
    for account_id, row in before.items():
        assert (after[account_id]["status"], after[account_id]["status_reason"]) == (
            row["status"],
            row["status_reason"],
        )
    sync_row = last_sync(conn)
    assert sync_row["complete"] is False
    assert sync_row["error"] == "AccessDeniedException: denied by an SCP"
    assert sync_row["counts"] == run.counts and run.counts["removed"] == {}
    assert 0 < run.counts["seen"] < len(before)


def test_a_parent_that_keeps_failing_is_retried_a_few_times_then_the_walk_stops_incomplete(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    client = organizations_client(aws)
    register(conn, keyring, org)
    sync(conn, keyring, client, org.org_id)
    aws.faults.update(fail_operations={"ListAccountsForParent": 100})
    aws.faults.reset_counts()

    no_botocore_retries = Config(retries={"mode": "standard", "total_max_attempts": 1})
    run = sync(conn, keyring, organizations_client(aws, no_botocore_retries), org.org_id)

    assert aws.faults.counts()["operations"]["ListAccountsForParent"] == discovery.PAGE_ATTEMPTS
    assert len(run.sleeps) == discovery.PAGE_ATTEMPTS - 1
    assert last_sync(conn)["complete"] is False
    assert last_sync(conn)["error"].startswith("InternalFailure")
    assert live(conn) == set(tree.values()) | {MANAGEMENT_ACCOUNT_ID}


class PagedOrganization:
    """A fake Organizations client serving one root whose accounts come in the given pages."""

    def __init__(self, account_pages: list[list[str]]) -> None:
        self.account_pages = account_pages
        self.requests: list[dict[str, Any]] = []

    def list_roots(self, **params: Any) -> dict[str, Any]:
        return {"Roots": [{"Id": "r-fake", "Name": "Root"}]}

    def list_accounts_for_parent(self, **params: Any) -> dict[str, Any]:
        self.requests.append(params)
        index = int(params.get("NextToken", "0"))
        page = {
            "Accounts": [
                {"Id": a, "Name": f"n{a}", "State": "ACTIVE"} for a in self.account_pages[index]
            ]
        }
        if index + 1 < len(self.account_pages):
            page["NextToken"] = str(index + 1)
        return page

    def list_organizational_units_for_parent(self, **params: Any) -> dict[str, Any]:
        return {"OrganizationalUnits": []}


def test_an_empty_page_carrying_a_next_token_is_followed_to_the_pages_after_it() -> None:
    client = PagedOrganization([[], ["111111111111"], [], [], ["222222222222", "333333333333"]])

    seen = [a.account_id for batch in discovery.walk(client, ()) for a in batch]

    assert seen == ["111111111111", "222222222222", "333333333333"]
    assert [r.get("NextToken") for r in client.requests] == [None, "1", "2", "3", "4"]
    assert {r["MaxResults"] for r in client.requests} == {discovery.PAGE_SIZE}


def test_throttled_pages_are_retried_and_the_walk_completes(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    register(conn, keyring, org)
    aws.faults.update(throttle={"ListAccountsForParent": 2})

    run = sync(conn, keyring, organizations_client(aws), org.org_id)

    parents = len(org.ids)
    assert aws.faults.counts()["operations"]["ListAccountsForParent"] == parents + 2
    assert last_sync(conn)["complete"] is True
    assert run.counts["imported"] == len(tree) + 1


def test_throttling_that_outlasts_botocore_retries_is_retried_per_page_with_backoff(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    register(conn, keyring, org)
    aws.faults.update(throttle={"ListOrganizationalUnitsForParent": 3})

    no_botocore_retries = Config(retries={"mode": "standard", "total_max_attempts": 1})
    run = sync(conn, keyring, organizations_client(aws, no_botocore_retries), org.org_id)

    assert len(run.sleeps) == 3
    assert all(0 <= s <= discovery.PAGE_BACKOFF_CAP for s in run.sleeps)
    assert last_sync(conn)["complete"] is True
    assert live(conn) == set(tree.values()) | {MANAGEMENT_ACCOUNT_ID}


# ---- counts in `orgsync orgs` ---------------------------------------------------------------


def test_the_orgs_view_shows_the_last_sync_with_its_counts_by_reason(
    conn: Conn, keyring: Keyring, aws: SimulatedAws, org: AwsOrg, tree: dict[str, str]
) -> None:
    client = organizations_client(aws)
    org.account("sandbox-x", "Root/Engineering")
    register(conn, keyring, org, exclude_prefixes=["sandbox-"])
    sync(conn, keyring, client, org.org_id)
    org.set_state(tree["dev"], "PENDING_CLOSURE")
    org.set_state(tree["fin"], "CLOSED")
    org.remove(tree["top"])
    register(
        conn,
        keyring,
        org,
        exclude_prefixes=["sandbox-"],
        limit_ou_ids=[org.ids["Root/Engineering"]],
    )

    run = sync(conn, keyring, client, org.org_id)

    (row,) = inventory.organizations(conn)
    assert row["last_sync"]["sync_id"] == run.sync_id
    assert row["last_sync"]["complete"] is True
    assert row["last_sync"]["counts"] == {
        # management, eng, prod, apps, core, dev, dev-deep, sandbox-x, fin, payroll
        "seen": 10,
        "imported": 5,  # eng, prod, apps, core, dev-deep
        "suspended": 1,  # dev, kept: auto-remove is off
        "excluded": {"name_prefix:sandbox-": 1, "out_of_scope": 3},
        "removed": {"out_of_scope": 3, "left_organization": 1},
    }
    assert row["accounts"] == {"pending": 5, "suspended": 1, "removed": 4}


# ---- standalone accounts and adoption -------------------------------------------------------


def role(account_id: str, name: str = "Standalone") -> standalone.AccountCredentials:
    return standalone.AccountCredentials(
        role_arn=f"arn:aws:iam::{account_id}:role/{name}", external_id="ext-123"
    )


def test_a_standalone_account_keeps_its_own_sealed_role_until_deleted(
    conn: Conn, keyring: Keyring
) -> None:
    standalone.add(conn, keyring, "210987654321", role("210987654321"), "lonely")
    standalone.set_credentials(conn, keyring, "210987654321", role("210987654321", "Other"))

    row = accounts(conn)["210987654321"]
    assert (row["org_id"], row["managed_by_org"], row["status"]) == (None, False, "pending")
    stored = conn.execute(
        "SELECT credentials_key_id, credentials FROM accounts WHERE account_id = '210987654321'"
    ).fetchone()
    assert stored is not None
    opened = open_json(
        keyring,
        Sealed(stored["credentials_key_id"], bytes(stored["credentials"])),
        "account:210987654321",
    )
    assert opened["role_arn"] == "arn:aws:iam::210987654321:role/Other"

    standalone.delete(conn, "210987654321")
    assert accounts(conn) == {}


def test_a_standalone_role_must_belong_to_the_account_itself(conn: Conn, keyring: Keyring) -> None:
    with pytest.raises(UserError, match="must name a role in account 210987654321"):
        standalone.add(conn, keyring, "210987654321", role("999999999999"), None)
    assert accounts(conn) == {}


def test_a_standalone_account_found_by_discovery_is_adopted_and_can_no_longer_be_edited_alone(
    conn: Conn,
    keyring: Keyring,
    aws: SimulatedAws,
    org: AwsOrg,
    tree: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
) -> None:
    core = tree["core"]
    standalone.add(conn, keyring, core, role(core), "core-standalone")
    register(conn, keyring, org)

    sync(conn, keyring, organizations_client(aws), org.org_id)

    adopted = accounts(conn)[core]
    assert adopted["managed_by_org"] is True and adopted["credentials"] is None
    assert (adopted["org_id"], adopted["org_path"], adopted["name"]) == (org.org_id, DEEP, "core")
    refusal = (
        f"account {core} is managed by organization {org.org_id} (acme); its credentials come"
        " from the organization and it cannot be edited or deleted on its own"
    )
    with pytest.raises(UserError) as raised:
        standalone.set_credentials(conn, keyring, core, role(core))
    assert str(raised.value) == refusal
    with pytest.raises(UserError, match="is managed by organization"):
        standalone.delete(conn, core)

    conn.commit()  # the CLI works on a connection of its own
    monkeypatch.setenv("ORGSYNC_DATABASE_URL", database_url)
    monkeypatch.setenv("ORGSYNC_ENCRYPTION_KEYS", keyring.format())
    arn = role(core).role_arn
    assert cli.main(["account", "set-credentials", core, "--role-arn", arn]) == 2
    assert cli.main(["account", "delete", core]) == 2
    assert cli.main(["account", "add", core, "--role-arn", arn]) == 2
    assert capsys.readouterr().err.splitlines() == [f"orgsync: {refusal}"] * 3
    assert accounts(conn)[core]["managed_by_org"] is True
