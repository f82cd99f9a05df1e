"""The change-event stage: one SQS message of an organization's feed becomes the smallest work.

`handle(deps, org, message_id, body)` reads the body (`change_events.read`), drops a repeated
eventID, re-reads AWS where the event says something moved (never trusting the event's copy),
and in one transaction records the event, claims the accounts for the feed's sync and emits
their next stage's page through the outbox. Only then may the caller delete the SQS message:
a crash before the commit leaves the message to come back; one after it finds the eventID
already recorded. A transient AWS failure raises `Transient` and records nothing.

Accounts claimed by the feed travel the usual stages under the feed's own sync (`feeds.sync_id`):
a tag change goes to harvesting (validation is the full sync's business), a re-read account to
discovery's usual rules (`discovery.load_page`), a renamed OU's accounts straight to the
reconciler with their new path. Each event's pages carry a token of their own in `redrive`, so
two events on one account are two messages.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from orgsync.pipelines.account_state import AccountStatus, StageMark
from orgsync.pipelines.aws_errors import Deferred, classify
from orgsync.pipelines.change_events import ChangeEvent, Unusable, Work, read
from orgsync.pipelines.discovery_load import load_page
from orgsync.pipelines.discovery_walk import SeenAccount
from orgsync.pipelines.events import (
    LIVE,
    AccountPage,
    AccountsDiscovered,
    AccountsValidated,
    Event,
    TagsHarvested,
    paged,
)
from orgsync.pipelines.orgs import Organization
from orgsync.pipelines.outbox import emit
from orgsync.pipelines.sql import load
from orgsync.pipelines.stage import Conn, Deps
from orgsync.pipelines.where_now import reread_account, reread_ou

SQL = load("orgsync.pipelines")
FEED_EPOCH = "2000-01-01T00:00:00Z"  # the feed's sync row: never an organization's latest


class Transient(Exception):
    """AWS could not be read now; the message stays in the queue and comes back."""


@dataclass(frozen=True)
class Handled:
    outcome: str  # applied, stale, ignored, rejected, failed, repeated
    reason: str | None = None
    event_name: str | None = None
    accounts: int = 0
    message_ids: tuple[str, ...] = ()


def feed_sync(conn: Conn, org_id: str) -> str:
    """The feed's sync of this organization, created with its `feeds` row on first use (under
    a lock of the transaction, so two workers starting together make one)."""
    if (found := conn.execute(SQL["feed_sync_id"], (org_id,)).fetchone()) is not None:
        return str(found["id"])
    conn.execute(SQL["lock_feed_creation"], (f"orgsync-feed:{org_id}",))
    if (found := conn.execute(SQL["feed_sync_id"], (org_id,)).fetchone()) is not None:
        return str(found["id"])
    created = conn.execute(SQL["create_feed_sync"], (org_id, FEED_EPOCH, FEED_EPOCH)).fetchone()
    assert created is not None
    conn.execute(SQL["create_feed"], (org_id, created["id"]))
    return str(created["id"])


def feed_polled(conn: Conn, org_id: str) -> None:
    """The organization's queue answered: any error it had is cleared."""
    feed_sync(conn, org_id)
    conn.execute(SQL["feed_polled"], (org_id,))


def feed_failed(conn: Conn, org_id: str, reason: str, delay: float) -> None:
    """The organization's queue could not be read: why (for `orgsync orgs`), since when, and
    when it is tried again (`delay` seconds from now)."""
    feed_sync(conn, org_id)
    conn.execute(SQL["feed_failed"], (reason[:500], delay, org_id))


def queues(conn: Conn) -> set[tuple[str, str]]:
    """(organization, queue URL) of every organization with a change-event queue."""
    return {(r["org_id"], r["events_queue_url"]) for r in conn.execute(SQL["feed_queues"])}


def forget_old_events(conn: Conn) -> None:
    """Forget the eventIDs no message can repeat any more."""
    conn.execute(SQL["forget_old_change_events"])


def seen_before(conn: Conn, org_id: str, event_id: str) -> bool:
    return conn.execute(SQL["change_event_seen"], (org_id, event_id)).fetchone() is not None


def handle(deps: Deps, org: Organization, message_id: str, body: str) -> Handled:
    """Handle one message of `org`'s queue; after it returns, the message may be deleted."""
    try:
        event: ChangeEvent | Unusable = read(body, org.management_account_id, org.org_id)
    except Exception as error:  # a shape `read` did not foresee: recorded once, never re-read
        event = Unusable(f"could not be read ({type(error).__name__})")
    key = event.event_id or f"sqs:{message_id[:100]}"
    with deps.connect() as conn:
        if seen_before(conn, org.org_id, key):
            return Handled("repeated", event_name=event.name)
    if isinstance(event, Unusable):
        return _record_only(deps, org, key, event, "rejected", event.reason)
    try:
        reread = _reread(deps, org, event)
    except (ClientError, BotoCoreError, Deferred) as error:
        verdict = classify(error)
        why = f"{verdict.code}: {verdict.message}"
        if verdict.transient:
            raise Transient(why) from error
        return _record_only(deps, org, key, event, "failed", f"AWS could not be read: {why}")
    with deps.connect() as conn:
        sync_id = feed_sync(conn, org.org_id)
        if not conn.execute(
            SQL["record_change_event"],
            (org.org_id, key, event.name, event.time, "applied", None, event.target),
        ).fetchone():
            return Handled("repeated", event_name=event.name)
        outcome, reason, events = _apply(conn, org, sync_id, event, reread)
        token = "ev-" + hashlib.sha256(f"{org.org_id}:{key}".encode()).hexdigest()[:20]
        pages = [replace(e, redrive=token, lane=LIVE) for e in events if isinstance(e, AccountPage)]
        ids = emit(conn, pages)
        if outcome != "applied" or reason:
            conn.execute(SQL["set_change_event_outcome"], (outcome, reason, org.org_id, key))
        conn.execute(SQL["feed_event_counted"], {"time": event.time, "org": org.org_id})
    deps.relay(ids)
    accounts = sum(len(e.account_ids) for e in events if isinstance(e, AccountPage))
    return Handled(outcome, reason, event.name, accounts, tuple(ids))


def _record_only(
    deps: Deps,
    org: Organization,
    key: str,
    event: ChangeEvent | Unusable,
    outcome: str,
    reason: str,
) -> Handled:
    target = event.target if isinstance(event, ChangeEvent) else None
    with deps.connect() as conn:
        feed_sync(conn, org.org_id)
        conn.execute(
            SQL["record_change_event"],
            (org.org_id, key, event.name, event.time, outcome, reason, target),
        )
        conn.execute(SQL["feed_event_counted"], {"time": event.time, "org": org.org_id})
    return Handled(outcome, reason, event.name)


# ---- get: AWS re-read, outside any transaction ---------------------------------------------


def _reread(deps: Deps, org: Organization, event: ChangeEvent) -> Any:
    if event.work is Work.HARVEST:
        return None  # harvesting reads the tags itself
    client = deps.organizations(org)
    if event.work is Work.REDISCOVER:
        return reread_account(client, event.target, org.filters.limit_ou_ids, deps.sleep)
    return reread_ou(client, event.target, org.filters.limit_ou_ids, deps.sleep)


# ---- load: one transaction --------------------------------------------------------------------


def _apply(
    conn: Conn, org: Organization, sync_id: str, event: ChangeEvent, reread: Any
) -> tuple[str, str | None, list[Event]]:
    if event.work is Work.OU_PATHS:
        return _repath(conn, org, sync_id, event, reread)
    state = conn.execute(SQL["lock_account_state"], (event.target, org.org_id)).fetchone()
    if state is not None and state["read_at"] is not None and event.time <= state["read_at"]:
        return "stale", f"account {event.target} was read from AWS after this event", []
    if event.work is Work.HARVEST:
        if state is None or state["status"] == AccountStatus.REMOVED:
            return "ignored", _not_ours(event.target, org), []
        # an account its sync has not validated yet (a new one, say) is validated on the way
        unvalidated = (
            state["status"] == AccountStatus.PENDING or state["stage"] == StageMark.DISCOVERED
        )
        kind: type[AccountPage] = AccountsDiscovered if unvalidated else AccountsValidated
        mark = StageMark.DISCOVERED if unvalidated else StageMark.VALIDATED
        conn.execute(SQL["claim_account_for_feed"], (sync_id, mark, event.target))
        page = kind(org_id=org.org_id, sync_id=sync_id, account_ids=(event.target,))
        return "applied", None, [page]
    if reread is None:  # not in the organization (any more)
        if state is None or state["status"] == AccountStatus.REMOVED:
            return "ignored", _not_ours(event.target, org), []
        conn.execute(SQL["remove_left_account"], (sync_id, event.target))
        return "applied", "left_organization", []
    conn.execute(SQL["release_account_from_sync"], (event.target, sync_id))
    events = load_page(conn, org, sync_id, [reread], Counter())
    # a walk removes what its filters exclude at its end (the removal guard's count); one
    # account's event is its own end: an account now out of scope is removed at once
    conn.execute(SQL["remove_excluded_accounts"], {"org_id": org.org_id, "sync_id": sync_id})
    conn.execute(SQL["mark_read_by_feed"], (event.target,))
    return "applied", None, events


def _repath(
    conn: Conn, org: Organization, sync_id: str, event: ChangeEvent, below: list[SeenAccount]
) -> tuple[str, str | None, list[Event]]:
    if not below:
        return "ignored", f"no account below {event.target} in organization {org.org_id}", []
    rows = conn.execute(
        SQL["repath_accounts"],
        {
            "sync": sync_id,
            "org": org.org_id,
            "time": event.time,
            "ids": [a.account_id for a in below],
            "paths": [a.org_path for a in below],
            "parents": [a.parent_id for a in below],
        },
    ).fetchall()
    changed = sorted(r["account_id"] for r in rows)
    events: list[Event] = [
        TagsHarvested(org_id=org.org_id, sync_id=sync_id, account_ids=page)
        for page in paged(changed)
    ]
    if not changed:
        return "stale", "every account below already has this path (or was read later)", []
    return "applied", None, events


def _not_ours(account_id: str, org: Organization) -> str:
    return f"account {account_id} is not an account of organization {org.org_id}"
