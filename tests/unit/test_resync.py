"""The selection rule of full and incremental syncs (pipelines/resync.py): each reason, their
order, where each account goes first, and the mode the scheduler picks."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orgsync.pipelines.discovery_decisions import ImportDecision
from orgsync.pipelines.discovery_walk import SeenAccount
from orgsync.pipelines.resync import (
    FULL,
    INCREMENTAL,
    NOT_SENT,
    Reason,
    Route,
    Stored,
    route,
    scheduled_mode,
)

ORG, SYNC = "o-aaaaaaaaaa", "11111111-1111-1111-1111-111111111111"
SEEN = SeenAccount(
    account_id="111122223333",
    name="prod",
    email="prod@example.com",
    aws_state="ACTIVE",
    org_path="Root/Eng",
    parent_id="ou-1",
    in_scope=True,
)
STORED = Stored(
    org_id=ORG,
    name="prod",
    email="prod@example.com",
    aws_state="ACTIVE",
    org_path="Root/Eng",
    parent_id="ou-1",
    status="ok",
    stage="reconciled",
    sync_id="22222222-2222-2222-2222-222222222222",
    validation_old=False,
    tags_old=False,
)
IMPORT, SUSPEND = ImportDecision("import"), ImportDecision("suspend", "account is SUSPENDED")


def incremental(
    stored: Stored | None, decision: ImportDecision = IMPORT, seen: SeenAccount = SEEN
) -> Route:
    return route(seen, decision, stored, org_id=ORG, sync_id=SYNC, mode=INCREMENTAL)


def test_an_account_nothing_happened_to_is_not_sent() -> None:
    assert incremental(STORED) == NOT_SENT


@pytest.mark.parametrize(
    "stored",
    [
        None,
        replace(STORED, org_id="o-bbbbbbbbbb"),
        replace(STORED, status="removed"),
    ],
    ids=["never stored", "another organization's", "removed before"],
)
def test_new_accounts_go_to_validation(stored: Stored | None) -> None:
    assert incremental(stored) == Route("validation", Reason.NEW)


@pytest.mark.parametrize(
    "field,value",
    [
        ("name", "renamed"),
        ("email", "other@example.com"),
        ("aws_state", "PENDING_CLOSURE"),
        ("org_path", "Root/Other"),
        ("parent_id", "ou-2"),
    ],
)
def test_a_change_the_walk_sees_sends_the_account(field: str, value: str) -> None:
    assert incremental(replace(STORED, **{field: value})) == Route("validation", Reason.CHANGED)


@pytest.mark.parametrize("status", ["assume_role_failed", "pending"])
def test_a_failed_or_never_finished_validation_is_tried_again(status: str) -> None:
    assert incremental(replace(STORED, status=status)) == Route("validation", Reason.FAILED)


@pytest.mark.parametrize("stage", ["discovered", "validated", "harvested", None])
def test_an_account_its_last_sync_had_not_finished_with_is_sent(stage: str | None) -> None:
    assert incremental(replace(STORED, stage=stage)) == Route("validation", Reason.UNFINISHED)


def test_an_old_validation_is_done_again_and_its_tags_come_with_it() -> None:
    old = replace(STORED, validation_old=True, tags_old=True)
    assert incremental(old) == Route("validation", Reason.REVALIDATE)


def test_old_tags_alone_go_straight_to_the_harvester() -> None:
    assert incremental(replace(STORED, tags_old=True)) == Route("harvest", Reason.REHARVEST)


def test_reasons_come_in_their_order() -> None:
    everything = replace(
        STORED, name="x", status="assume_role_failed", stage="validated", tags_old=True
    )
    assert incremental(everything).reason is Reason.CHANGED
    assert incremental(replace(everything, name="prod")).reason is Reason.FAILED


def test_a_suspended_account_is_never_validated() -> None:
    suspended = replace(STORED, status="suspended", aws_state="SUSPENDED")
    seen = replace(SEEN, aws_state="SUSPENDED")
    assert incremental(suspended, SUSPEND, seen) == NOT_SENT
    assert incremental(replace(suspended, validation_old=True), SUSPEND, seen) == NOT_SENT
    assert incremental(replace(suspended, tags_old=True), SUSPEND, seen) == Route(
        "harvest", Reason.REHARVEST
    )
    assert incremental(STORED, SUSPEND, seen) == Route("harvest", Reason.CHANGED)
    assert incremental(None, SUSPEND, seen) == Route("harvest", Reason.NEW)


def test_an_account_this_sync_already_stored_is_not_sent_twice() -> None:
    again = replace(STORED, sync_id=SYNC, stage="discovered")
    assert incremental(again) == NOT_SENT
    assert route(SEEN, IMPORT, again, org_id=ORG, sync_id=SYNC, mode=FULL) == NOT_SENT


def test_a_full_sync_sends_every_account_with_its_reason_or_full() -> None:
    def full(stored: Stored | None, decision: ImportDecision = IMPORT) -> Route:
        return route(SEEN, decision, stored, org_id=ORG, sync_id=SYNC, mode=FULL)

    assert full(STORED) == Route("validation", Reason.FULL)
    assert full(None) == Route("validation", Reason.NEW)
    assert full(replace(STORED, tags_old=True)) == Route("harvest", Reason.REHARVEST)
    assert full(STORED, SUSPEND) == Route("harvest", Reason.FULL)  # never validated


def test_the_scheduler_goes_incremental_only_with_a_healthy_feed() -> None:
    assert scheduled_mode(feed_healthy=True) == INCREMENTAL
    assert scheduled_mode(feed_healthy=False) == FULL
