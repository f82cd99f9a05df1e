"""The change-event feed on real PostgreSQL and moto's Organizations and SQS: each event becomes
the smallest work through the usual stages, AWS is re-read, repeats and stale events do
nothing, and an SQS message is deleted only once its work is committed."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orgsync.pipelines import discovery, feed
from orgsync.services.processes.feed_poller import Feed
from orgsync.services.read_models import inventory
from tests.support.feed_world import World
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def tag(world: World, account_id: str, key: str, value: str) -> None:
    world.orgs.tag_resource(ResourceId=account_id, Tags=[{"Key": key, "Value": value}])


def test_a_tag_change_event_harvests_and_reconciles_that_account_alone(world: World) -> None:
    tag(world, world.prod, "team", "b")
    tag(world, world.top, "team", "changed-but-no-event")
    world.calls.clear()
    handled = world.handle(world.event("TagResource"))
    assert (handled.outcome, handled.accounts) == ("applied", 1)
    assert (
        world.calls == []
    )  # the event stage itself trusts nothing and reads nothing: harvest does
    assert world.drain() == 2  # harvest, reconcile: no discovery, no validation
    assert world.calls == ["ListTagsForResource"]
    assert world.badge(world.prod, "team") == "b"
    assert world.badge(world.top, "team") == "t"  # no event, no work


def test_a_repeated_event_id_does_nothing(world: World) -> None:
    body = world.event("UntagResource")
    assert world.handle(body).outcome == "applied"
    assert world.handle(body).outcome == "repeated"
    assert world.drain() == 2
    assert world.outcomes() == [("UntagResource", "applied")]


def test_two_events_on_one_account_are_two_pieces_of_work(world: World) -> None:
    tag(world, world.prod, "team", "b")
    assert world.handle(world.event("TagResource")).outcome == "applied"
    assert world.drain() == 2
    tag(world, world.prod, "team", "c")
    assert world.handle(world.event("TagResource")).outcome == "applied"
    assert world.drain() == 2
    assert world.badge(world.prod, "team") == "c"


def test_an_event_older_than_the_state_it_would_change_does_nothing(world: World) -> None:
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    handled = world.handle(world.event("TagResource", eventTime=an_hour_ago))
    assert handled.outcome == "stale"
    assert world.drain() == 0


def test_an_event_on_an_account_of_another_organization_changes_nothing(world: World) -> None:
    world.conn.execute(
        "INSERT INTO accounts (account_id, org_id, name) VALUES ('999999999999', NULL, 'x')"
    )
    world.conn.commit()
    body = world.event("TagResource", requestParameters={"resourceId": "999999999999"})
    assert world.handle(body).outcome == "ignored"
    body = world.event("CloseAccount", requestParameters={"accountId": "999999999999"})
    assert world.handle(body).outcome == "ignored"  # AWS does not know it in this organization
    assert world.drain() == 0


def test_a_malformed_body_is_recorded_with_its_reason(world: World) -> None:
    handled = world.handle("{not json")
    assert handled.outcome == "rejected" and "not JSON" in (handled.reason or "")
    assert world.outcomes() == [(None, "rejected")]


def test_move_account_rereads_its_parents_new_path_and_scope(world: World) -> None:
    world.orgs.move_account(
        AccountId=world.prod, SourceParentId=world.prod_ou, DestinationParentId=world.eng
    )
    assert world.handle(world.event("MoveAccount")).outcome == "applied"
    world.drain()
    assert world.account_row(world.prod)["org_path"] == "Root/Eng"
    assert world.badge(world.prod, "cloud_org_path") == "Root/Eng"
    # scope judged again: limited to Prod, the account that left it is removed
    world.conn.execute(
        "UPDATE organizations SET limit_ou_ids = %s WHERE org_id = %s",
        ([world.prod_ou], world.org_id),
    )
    world.conn.commit()
    assert world.handle(world.event("MoveAccount")).outcome == "applied"
    assert world.account_row(world.prod)["status"] == "removed"
    assert world.account_row(world.prod)["status_reason"] == "out_of_scope"


def test_a_created_account_is_discovered_validated_and_harvested(world: World) -> None:
    new = world.account("fresh", world.prod_ou, {"team": "new"})
    status = {"state": "SUCCEEDED", "accountId": new, "id": "car-x", "accountName": "fresh"}
    body = world.event("CreateAccountResult", serviceEventDetails={"createAccountStatus": status})
    assert world.handle(body).outcome == "applied"
    assert world.drain() == 3  # validation, harvest, reconcile
    row = world.account_row(new)
    assert (row["status"], row["org_path"]) == ("ok", "Root/Eng/Prod")
    assert world.badge(new, "team") == "new"


def test_a_closed_account_is_suspended_and_a_removed_one_leaves(world: World) -> None:
    world.orgs.close_account(AccountId=world.prod)
    assert world.handle(world.event("CloseAccount")).outcome == "applied"
    world.drain()
    assert world.account_row(world.prod)["status"] == "suspended"
    world.orgs.remove_account_from_organization(AccountId=world.top)
    body = world.event("RemoveAccountFromOrganization", requestParameters={"accountId": world.top})
    assert world.handle(body).outcome == "applied"
    row = world.account_row(world.top)
    assert (row["status"], row["status_reason"]) == ("removed", "left_organization")


def test_a_renamed_ou_gives_every_account_below_it_its_new_path(world: World) -> None:
    world.orgs.update_organizational_unit(OrganizationalUnitId=world.eng, Name="Engineering")
    body = world.event(
        "UpdateOrganizationalUnit",
        requestParameters={"organizationalUnitId": world.eng, "name": "Engineering"},
    )
    assert world.handle(body).outcome == "applied"
    assert world.drain() == 1  # the reconciler alone
    assert world.badge(world.prod, "cloud_org_path") == "Root/Engineering/Prod"
    assert world.account_row(world.top)["org_path"] == "Root"


def test_a_full_walk_does_not_remove_an_account_an_event_took_while_it_ran(world: World) -> None:
    sync_id = str(uuid.uuid4())
    world.conn.execute(
        "INSERT INTO syncs (sync_id, org_id, trigger) VALUES (%s, %s, 'test')",
        (sync_id, world.org_id),
    )
    world.conn.commit()
    pages = discovery.walk(world.orgs, ())
    seen = [a for page in pages for a in page]
    with world.deps.connect() as conn:
        discovery.load_page(conn, world.org, sync_id, seen, Counter())
    assert world.handle(world.event("TagResource")).outcome == "applied"
    with world.deps.connect() as conn:
        discovery.finish(conn, world.org_id, sync_id, Counter(), None)
    assert world.account_row(world.prod)["status"] != "removed"


def test_the_poller_deletes_a_message_only_once_its_work_is_committed(world: World) -> None:
    world.orgs.move_account(
        AccountId=world.prod, SourceParentId=world.prod_ou, DestinationParentId=world.eng
    )
    world.sqs.send_message(QueueUrl=world.url, MessageBody=world.event("MoveAccount"))
    world.sqs.send_message(QueueUrl=world.url, MessageBody="garbage")
    throttled = [True]

    def throttle(**_: Any) -> None:
        if throttled[0]:
            error = {"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}
            raise ClientError(error, "DescribeAccount")  # type: ignore[arg-type]

    world.orgs.meta.events.register("before-call.organizations.DescribeAccount", throttle)
    poller = Feed(world.deps, lambda org, url: world.sqs, wait_seconds=0, visibility=0)
    assert poller.attempt(world.org_id, world.url, 0) is None
    # AWS could not be re-read: the move's work is not committed, so its message stays
    left = world.sqs.receive_message(QueueUrl=world.url, VisibilityTimeout=0)["Messages"]
    assert [json.loads(m["Body"])["detail"]["eventName"] for m in left] == ["MoveAccount"]
    assert world.outcomes() == [(None, "rejected")]  # the garbage: recorded, deleted
    throttled[0] = False
    assert poller.attempt(world.org_id, world.url, 0) is None
    assert not world.sqs.receive_message(QueueUrl=world.url).get("Messages")
    assert [o for _, o in world.outcomes()] == ["rejected", "applied"]
    assert world.account_row(world.prod)["org_path"] == "Root/Eng"
    (shown,) = inventory.organizations(world.conn)
    assert shown["feed"]["queue"] == world.url and shown["feed"]["handled"] == 2
    assert shown["feed"]["error"] is None and shown["feed"]["lag_seconds"] is not None


def test_a_deleted_queue_is_shown_with_its_reason_and_tried_again_later(world: World) -> None:
    world.sqs.delete_queue(QueueUrl=world.url)
    poller = Feed(world.deps, lambda org, url: world.sqs, wait_seconds=0)
    delay = poller.attempt(world.org_id, world.url, 3)
    assert delay is not None and 0 <= delay <= 16
    (shown,) = inventory.organizations(world.conn)
    assert "NonExistentQueue" in shown["feed"]["error"]
    assert shown["feed"]["retry_at"] is not None


def test_event_ids_older_than_sqs_keeps_a_message_are_forgotten(world: World) -> None:
    for event_id, age in (("old", "16 days"), ("recent", "1 day")):
        world.conn.execute(
            "INSERT INTO change_events (org_id, event_id, outcome, handled_at)"
            " VALUES (%s, %s, 'applied', now() - %s::interval)",
            (world.org_id, event_id, age),
        )
    world.conn.commit()
    poller = Feed(world.deps, lambda org, url: world.sqs, wait_seconds=0, refresh=0.05)
    thread = poller.start()

    def purged() -> list[str] | None:
        ids = [r["event_id"] for r in world.conn.execute("SELECT event_id FROM change_events")]
        world.conn.commit()
        return ids if "old" not in ids else None

    try:
        ids = wait_until(purged, 10, "the old event purged")
    finally:
        poller.stop.set()
        thread.join(timeout=10)
    assert ids == ["recent"]


def test_a_tag_event_on_an_account_not_yet_validated_validates_it_on_the_way(
    world: World,
) -> None:
    world.conn.execute(
        "UPDATE accounts SET status = 'pending', stage = 'discovered' WHERE account_id = %s",
        (world.prod,),
    )
    world.conn.commit()
    tag(world, world.prod, "team", "new")
    assert world.handle(world.event("TagResource")).outcome == "applied"
    assert world.drain() == 3  # validation, harvest, reconcile
    assert world.account_row(world.prod)["status"] == "ok"
    assert world.badge(world.prod, "team") == "new"


def test_two_workers_starting_a_feed_together_make_one_feed_sync(world: World) -> None:
    barrier = threading.Barrier(2)

    def start() -> str:
        with world.deps.connect() as conn:
            conn.execute("SELECT 1")  # each in a transaction of its own
            barrier.wait(timeout=10)
            return feed.feed_sync(conn, world.org_id)

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: start(), range(2))
    assert first == second
    rows = world.conn.execute("SELECT count(*) AS n FROM syncs WHERE trigger = 'events'")
    assert rows.fetchone() == {"n": 1}


@pytest.mark.parametrize(
    "broken",
    [
        lambda w: w.event("CreateAccountResult", serviceEventDetails="a string"),
        lambda w: w.event("AcceptHandshake", userIdentity="a string", recipientAccountId=None),
        lambda w: "[" * 50_000 + "]" * 50_000,
    ],
    ids=["service-event-details-a-string", "user-identity-a-string", "nested-50000-deep"],
)
def test_a_body_of_the_wrong_shape_is_recorded_once_and_its_message_can_go(
    world: World, broken: Any
) -> None:
    body = broken(world)
    handled = world.handle(body)  # returning at all is what lets the poller delete the message
    assert handled.outcome == "rejected" and handled.reason
    assert [outcome for _, outcome in world.outcomes()] == ["rejected"]
    assert world.handle(body).outcome in ("repeated", "rejected")
    assert world.drain() == 0


def test_a_forged_future_event_time_never_becomes_the_feeds_last_event(world: World) -> None:
    handled = world.handle(world.event("TagResource", eventTime="9999-12-31T23:59:59Z"))
    assert handled.outcome == "rejected" and "in the future" in (handled.reason or "")
    row = world.conn.execute("SELECT last_event_at FROM feeds").fetchone()
    world.conn.commit()
    assert row is not None and (row["last_event_at"] is None or row["last_event_at"].year < 9999)
