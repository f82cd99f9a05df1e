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

from orgsync.pipelines.aws_errors import classify
from orgsync.pipelines.change_events import ChangeEvent, Unusable, Work, read
from orgsync.pipelines.discovery import REMOVE_EXCLUDED, SeenAccount, load_page
from orgsync.pipelines.events import (
    AccountPage,
    AccountsDiscovered,
    AccountsValidated,
    Event,
    TagsHarvested,
)
from orgsync.pipelines.events import pages as page_split
from orgsync.pipelines.orgs import Organization
from orgsync.pipelines.outbox import emit
from orgsync.pipelines.stage import Conn, Deps
from orgsync.pipelines.where_now import reread_account, reread_ou

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
    query = "SELECT sync_id::text AS id FROM feeds WHERE org_id = %s"
    if (found := conn.execute(query, (org_id,)).fetchone()) is not None:
        return str(found["id"])
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"orgsync-feed:{org_id}",))
    if (found := conn.execute(query, (org_id,)).fetchone()) is not None:
        return str(found["id"])
    created = conn.execute(
        "INSERT INTO syncs (sync_id, org_id, trigger, started_at, walked_at, complete)"
        " VALUES (gen_random_uuid(), %s, 'events', %s, %s, true) RETURNING sync_id::text AS id",
        (org_id, FEED_EPOCH, FEED_EPOCH),
    ).fetchone()
    assert created is not None
    conn.execute("INSERT INTO feeds (org_id, sync_id) VALUES (%s, %s)", (org_id, created["id"]))
    return str(created["id"])


RECORD = """
INSERT INTO change_events (org_id, event_id, event_name, event_time, outcome, reason, target)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (org_id, event_id) DO NOTHING
RETURNING event_id
"""

COUNT = """
UPDATE feeds SET handled = handled + 1, last_handled_at = now(),
       last_event_at = greatest(last_event_at, %(time)s),
       lag_seconds = CASE WHEN %(time)s::timestamptz IS NULL THEN lag_seconds
                          ELSE extract(epoch FROM now() - %(time)s) END
WHERE org_id = %(org)s
"""


def seen_before(conn: Conn, org_id: str, event_id: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM change_events WHERE org_id = %s AND event_id = %s", (org_id, event_id)
        ).fetchone()
        is not None
    )


def handle(deps: Deps, org: Organization, message_id: str, body: str) -> Handled:
    """Handle one message of `org`'s queue; after it returns, the message may be deleted."""
    event = read(body, org.management_account_id, org.org_id)
    key = event.event_id or f"sqs:{message_id[:100]}"
    with deps.connect() as conn:
        if seen_before(conn, org.org_id, key):
            return Handled("repeated", event_name=event.name)
    if isinstance(event, Unusable):
        return _record_only(deps, org, key, event, "rejected", event.reason)
    try:
        reread = _reread(deps, org, event)
    except (ClientError, BotoCoreError) as error:
        verdict = classify(error)
        why = f"{verdict.code}: {verdict.message}"
        if verdict.transient:
            raise Transient(why) from error
        return _record_only(deps, org, key, event, "failed", f"AWS could not be read: {why}")
    with deps.connect() as conn:
        sync_id = feed_sync(conn, org.org_id)
        if not conn.execute(
            RECORD, (org.org_id, key, event.name, event.time, "applied", None, event.target)
        ).fetchone():
            return Handled("repeated", event_name=event.name)
        outcome, reason, events = _apply(conn, org, sync_id, event, reread)
        token = "ev-" + hashlib.sha256(f"{org.org_id}:{key}".encode()).hexdigest()[:20]
        ids = emit(conn, [replace(e, redrive=token) for e in events if isinstance(e, AccountPage)])
        if outcome != "applied" or reason:
            conn.execute(
                "UPDATE change_events SET outcome = %s, reason = %s"
                " WHERE org_id = %s AND event_id = %s",
                (outcome, reason, org.org_id, key),
            )
        conn.execute(COUNT, {"time": event.time, "org": org.org_id})
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
        conn.execute(RECORD, (org.org_id, key, event.name, event.time, outcome, reason, target))
        conn.execute(COUNT, {"time": event.time, "org": org.org_id})
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

STATE = """
SELECT a.account_id, a.status, a.stage, greatest(a.feed_at, s.started_at) AS read_at
FROM accounts a LEFT JOIN syncs s ON s.sync_id = a.sync_id
WHERE a.account_id = %s AND a.org_id = %s AND a.managed_by_org
FOR UPDATE OF a
"""

CLAIM = """
UPDATE accounts SET sync_id = %s, stage = %s, stage_at = now(), feed_at = now()
WHERE account_id = %s
"""

LEFT = """
UPDATE accounts SET status = 'removed', status_reason = 'left_organization', sync_id = %s,
                    stage = 'reconciled', stage_at = now(), feed_at = now(), updated_at = now()
WHERE account_id = %s AND status <> 'removed'
"""

REPATH = """
UPDATE accounts a SET org_path = v.org_path, parent_id = v.parent_id, sync_id = %(sync)s,
                      stage = 'harvested', stage_at = now(), feed_at = now(), updated_at = now()
FROM unnest(%(ids)s::text[], %(paths)s::text[], %(parents)s::text[])
     AS v(account_id, org_path, parent_id)
WHERE a.account_id = v.account_id AND a.org_id = %(org)s AND a.managed_by_org
  AND a.status <> 'removed' AND a.org_path IS DISTINCT FROM v.org_path
  AND %(time)s > coalesce(greatest(a.feed_at, (SELECT s.started_at FROM syncs s
                                                WHERE s.sync_id = a.sync_id)), '-infinity')
RETURNING a.account_id
"""


def _apply(
    conn: Conn, org: Organization, sync_id: str, event: ChangeEvent, reread: Any
) -> tuple[str, str | None, list[Event]]:
    if event.work is Work.OU_PATHS:
        return _repath(conn, org, sync_id, event, reread)
    state = conn.execute(STATE, (event.target, org.org_id)).fetchone()
    if state is not None and state["read_at"] is not None and event.time <= state["read_at"]:
        return "stale", f"account {event.target} was read from AWS after this event", []
    if event.work is Work.HARVEST:
        if state is None or state["status"] == "removed":
            return "ignored", _not_ours(event.target, org), []
        # an account its sync has not validated yet (a new one, say) is validated on the way
        unvalidated = state["status"] == "pending" or state["stage"] == "discovered"
        kind: type[AccountPage] = AccountsDiscovered if unvalidated else AccountsValidated
        conn.execute(CLAIM, (sync_id, "discovered" if unvalidated else "validated", event.target))
        page = kind(org_id=org.org_id, sync_id=sync_id, account_ids=(event.target,))
        return "applied", None, [page]
    if reread is None:  # not in the organization (any more)
        if state is None or state["status"] == "removed":
            return "ignored", _not_ours(event.target, org), []
        conn.execute(LEFT, (sync_id, event.target))
        return "applied", "left_organization", []
    # discovery's upsert skips an account already in the sync it loads: free it first
    conn.execute(
        "UPDATE accounts SET sync_id = NULL WHERE account_id = %s AND sync_id = %s",
        (event.target, sync_id),
    )
    events = load_page(conn, org, sync_id, [reread], Counter())
    # a walk removes what its filters exclude at its end (the removal guard's count); one
    # account's event is its own end: an account now out of scope is removed at once
    conn.execute(REMOVE_EXCLUDED, {"org_id": org.org_id, "sync_id": sync_id})
    conn.execute("UPDATE accounts SET feed_at = now() WHERE account_id = %s", (event.target,))
    return "applied", None, events


def _repath(
    conn: Conn, org: Organization, sync_id: str, event: ChangeEvent, below: list[SeenAccount]
) -> tuple[str, str | None, list[Event]]:
    if not below:
        return "ignored", f"no account below {event.target} in organization {org.org_id}", []
    rows = conn.execute(
        REPATH,
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
        for page in page_split(changed)
    ]
    if not changed:
        return "stale", "every account below already has this path (or was read later)", []
    return "applied", None, events


def _not_ours(account_id: str, org: Organization) -> str:
    return f"account {account_id} is not an account of organization {org.org_id}"
