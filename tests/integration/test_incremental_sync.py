"""Incremental syncs on real PostgreSQL and moto's Organizations (issue 26): an unchanged
organization costs its walk alone, and every kind of drift a change event could have missed is
repaired by the next incremental sync, the walk's kinds at once and tags once their last read is
older than ORGSYNC_REHARVEST_AFTER."""

from __future__ import annotations

from typing import Any

import pytest

from orgsync.pipelines.resync import FEED_HEALTHY_WITHIN_S
from orgsync.services.processes import scheduler
from tests.support.feed_world import World

pytestmark = pytest.mark.integration
WALK_CALLS = {"ListRoots", "ListAccountsForParent", "ListOrganizationalUnitsForParent"}


def incremental(world: World) -> dict[str, Any]:
    """An incremental sync run to its end: its row, and the AWS calls it made."""
    world.calls.clear()
    sync_id = world.sync("incremental")
    row = world.conn.execute(
        "SELECT mode, complete, sent, (SELECT count(*) FROM accounts a WHERE a.sync_id ="
        " s.sync_id AND a.stage <> 'reconciled') AS busy FROM syncs s WHERE sync_id = %s",
        (sync_id,),
    ).fetchone()
    world.conn.commit()
    assert row is not None and row["mode"] == "incremental" and row["complete"]
    assert row["busy"] == 0  # every account of the sync is through it
    return {"sent": row["sent"], "calls": list(world.calls)}


def age(world: World, account_id: str, column: str) -> None:
    """The account's last validation or tag read, two days ago."""
    assert column in ("validated_at", "tags_read_at")
    world.conn.execute(
        f"UPDATE accounts SET {column} = now() - interval '2 days' WHERE account_id = %s",
        (account_id,),
    )
    world.conn.commit()


def test_an_unchanged_organization_costs_the_walk_alone(world: World) -> None:
    run = incremental(world)
    assert run["sent"] == {}
    assert set(run["calls"]) == WALK_CALLS  # no AssumeRole, no ListTagsForResource


def test_a_full_sync_sends_every_account_and_says_why(world: World) -> None:
    world.calls.clear()
    sync_id = world.sync("full")
    sent = world.conn.execute("SELECT sent FROM syncs WHERE sync_id = %s", (sync_id,)).fetchone()
    world.conn.commit()
    assert sent is not None and sent["sent"] == {"validation": {"full": 3}}  # prod, top, mgmt
    assert world.calls.count("AssumeRole") == 3 and world.calls.count("ListTagsForResource") == 3


def test_an_account_moved_without_an_event_gets_its_new_path_and_badge(world: World) -> None:
    world.orgs.move_account(
        AccountId=world.prod, SourceParentId=world.prod_ou, DestinationParentId=world.root
    )
    run = incremental(world)
    assert run["sent"] == {"validation": {"changed": 1}}
    assert world.account_row(world.prod)["org_path"] == "Root"
    assert world.badge(world.prod, "cloud_org_path") == "Root"


def test_a_renamed_account_is_sent_again(world: World) -> None:
    world.conn.execute("UPDATE accounts SET name = 'old name' WHERE account_id = %s", (world.top,))
    world.conn.commit()
    run = incremental(world)
    assert run["sent"] == {"validation": {"changed": 1}}
    name = world.conn.execute("SELECT name FROM accounts WHERE account_id = %s", (world.top,))
    assert name.fetchone() == {"name": "top"}


def test_tags_changed_without_an_event_are_read_again_once_past_the_reharvest_age(
    world: World,
) -> None:
    world.orgs.tag_resource(ResourceId=world.prod, Tags=[{"Key": "team", "Value": "b"}])
    assert incremental(world)["sent"] == {}  # read less than a day ago: not yet
    assert world.badge(world.prod, "team") == "a"
    age(world, world.prod, "tags_read_at")
    run = incremental(world)
    assert run["sent"] == {"harvest": {"reharvest": 1}}
    assert "AssumeRole" not in run["calls"]  # its role was checked recently: harvest alone
    assert run["calls"].count("ListTagsForResource") == 1
    assert world.badge(world.prod, "team") == "b"


def test_an_account_validated_long_ago_is_validated_again(world: World) -> None:
    age(world, world.top, "validated_at")
    run = incremental(world)
    assert run["sent"] == {"validation": {"revalidate": 1}}
    assert run["calls"].count("AssumeRole") == 1


def test_a_failed_validation_is_tried_again(world: World) -> None:
    world.conn.execute(
        "UPDATE accounts SET status = 'assume_role_failed' WHERE account_id = %s", (world.top,)
    )
    world.conn.commit()
    run = incremental(world)
    assert run["sent"] == {"validation": {"failed": 1}}
    assert world.account_row(world.top)["status"] == "ok"


def test_an_account_its_last_sync_had_not_finished_with_is_sent_again(world: World) -> None:
    world.conn.execute(
        "UPDATE accounts SET stage = 'validated' WHERE account_id = %s", (world.top,)
    )
    world.conn.commit()
    assert incremental(world)["sent"] == {"validation": {"unfinished": 1}}


def test_a_new_account_joins_and_a_departed_one_is_removed(world: World) -> None:
    new = world.account("fresh", world.prod_ou, {"team": "new"})
    world.orgs.remove_account_from_organization(AccountId=world.top)
    run = incremental(world)
    assert run["sent"] == {"validation": {"new": 1}}
    assert world.badge(new, "team") == "new"
    assert world.account_row(world.top)["status"] == "removed"
    assert world.account_row(world.top)["status_reason"] == "left_organization"


def test_an_account_back_from_an_exclusion_is_new_again(world: World) -> None:
    world.conn.execute(
        "UPDATE organizations SET exclude_prefixes = '{to}' WHERE org_id = %s", (world.org_id,)
    )
    world.conn.commit()
    assert incremental(world)["sent"] == {}
    assert world.account_row(world.top)["status_reason"] == "name_prefix:to"
    world.conn.execute(
        "UPDATE organizations SET exclude_prefixes = '{}' WHERE org_id = %s", (world.org_id,)
    )
    world.conn.commit()
    assert incremental(world)["sent"] == {"validation": {"new": 1}}
    assert world.account_row(world.top)["status"] == "ok"


def test_scheduled_syncs_are_incremental_only_while_the_feed_answers(world: World) -> None:
    def due_mode() -> str:
        world.conn.execute(  # its last sync, two hours ago: due
            "UPDATE syncs SET started_at = now() - interval '2 hours' WHERE org_id = %s",
            (world.org_id,),
        )
        mode = scheduler.due(world.conn, interval=3600)[world.org_id]
        world.conn.rollback()
        return mode

    def feed(polled_ago_s: float, error: str | None = None) -> None:
        world.conn.execute(
            "INSERT INTO feeds (org_id, sync_id, polled_at, error) VALUES"
            " (%s, (SELECT sync_id FROM syncs WHERE org_id = %s LIMIT 1),"
            " now() - make_interval(secs => %s), %s)"
            " ON CONFLICT (org_id) DO UPDATE SET polled_at = EXCLUDED.polled_at,"
            " error = EXCLUDED.error",
            (world.org_id, world.org_id, polled_ago_s, error),
        )
        world.conn.commit()

    assert due_mode() == "full"  # its queue is set, but never polled
    feed(10)
    assert due_mode() == "incremental"
    feed(10, error="AccessDenied")
    assert due_mode() == "full"
    feed(FEED_HEALTHY_WITHIN_S + 60)
    assert due_mode() == "full"
    feed(10)
    world.conn.execute(
        "UPDATE organizations SET events_queue_url = NULL WHERE org_id = %s", (world.org_id,)
    )
    world.conn.commit()
    assert due_mode() == "full"
