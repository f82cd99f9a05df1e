"""Harvesting, stage 1 of auto-badging (account-validated → tags-harvested).

`harvest` takes a page of accounts: one read (references, which accounts still wait, their
stored tags), the ListTagsForResource calls concurrently, one transaction that overwrites each
account's stored ResourceTags only where AWS's differ. An account whose call failed
transiently goes round again in a smaller page; tags that cannot be read (a permanent error,
a malformed answer, a transient one that outlasts the attempts) are kept as they were, never
wiped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from psycopg.types.json import Jsonb

from orgsync.pipelines.account_state import StageMark
from orgsync.pipelines.aws_errors import (
    Deferred,
    ErrorClass,
    again_after,
    backoff_seconds,
    classify,
)
from orgsync.pipelines.events import AccountsValidated, TagsHarvested
from orgsync.pipelines.orgs import load_organization
from orgsync.pipelines.outbox import emit
from orgsync.pipelines.references import look_up
from orgsync.pipelines.sql import load
from orgsync.pipelines.stage import Conn, Deps, Outcome, StageResult, rejected

SQL = load("orgsync.pipelines")
MAX_ATTEMPTS = 6  # per account, each after botocore's own retries; throttling never counts
RETRY_BASE_SECONDS = 1.0


class MalformedTags(ValueError):
    """ListTagsForResource answered with a tag that has no key."""


def fetch_tags(orgs: Any, account_id: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for page in orgs.get_paginator("list_tags_for_resource").paginate(ResourceId=account_id):
        for tag in page.get("Tags") or []:
            if not isinstance(tag, dict) or not isinstance(tag.get("Key"), str):
                raise MalformedTags(f"ListTagsForResource({account_id}) returned a tag without Key")
            tags[tag["Key"]] = str(tag.get("Value") or "")
    return tags


@dataclass(frozen=True)
class Unread:
    """Why an account's tags could not be read; `transient` when trying again may help."""

    error: str
    transient: bool = False
    malformed: bool = False
    throttling: bool = False  # AWS asked for fewer calls: never a reason to give up
    verdict: ErrorClass | None = None


def try_tags(orgs: Any, account_id: str) -> dict[str, str] | Unread:
    try:
        return fetch_tags(orgs, account_id)
    except (ClientError, BotoCoreError, Deferred) as error:
        verdict = classify(error)
        return Unread(
            f"{verdict.code}: {verdict.message}",
            transient=verdict.transient,
            throttling=verdict.throttling,
            verdict=verdict,
        )
    except MalformedTags as error:
        return Unread(str(error), malformed=True)


def harvest(deps: Deps, event: AccountsValidated) -> StageResult:
    with deps.connect() as conn:
        found = look_up(conn, event, StageMark.VALIDATED)
        org = load_organization(conn, deps.keyring, event.org_id) if found.due else None
    if found.problem:
        return rejected(found.problem)
    if org is None:
        return StageResult(Outcome.SKIPPED)
    orgs = deps.organizations(org)
    due = list(found.due)
    answers = deps.concurrently(lambda account: try_tags(orgs, account), due)
    tags: dict[str, dict[str, str]] = {}
    again: dict[str, Unread] = {}
    unread: list[Unread] = []
    for account_id, answer in zip(due, answers, strict=True):
        if (
            isinstance(answer, Unread)
            and answer.transient
            and (event.attempt < MAX_ATTEMPTS or answer.throttling)
        ):
            again[account_id] = answer
            continue
        if isinstance(answer, Unread):
            unread.append(answer)
        tags[account_id] = found.due[account_id] if isinstance(answer, Unread) else answer
    changed = [a for a, new in tags.items() if new != found.due[a]]
    with deps.connect() as conn:
        ids = store_tags(conn, event, tags, changed)
        ids += retry_later(conn, event, again)
    deps.relay(ids)
    return StageResult(
        Outcome.DONE,
        counts={
            "accounts": len(event.account_ids),
            "harvested": len(tags),
            "changed": len(changed),
            "unread": len(unread),
            "again": len(again),
        },
        message_ids=ids,
        error_code=unread[0].error.partition(":")[0] if unread else None,
        reason=f"tags kept as they were: {unread[0].error}" if unread else None,
        rejections=[f"{u.error}; the stored tags are kept" for u in unread if u.malformed],
    )


def retry_later(conn: Conn, event: AccountsValidated, again: dict[str, Unread]) -> list[str]:
    """These accounts of the page try again, as a page of their own, after a jittered delay
    (or at their rate budget's next free slot, when it deferred them)."""
    if not again:
        return []
    backoff = backoff_seconds(event.attempt - 1, base=RETRY_BASE_SECONDS)
    delay = again_after([u.verdict for u in again.values() if u.verdict], backoff)
    return emit(conn, [event.retried(list(again))], delay_s=delay)


def store_tags(
    conn: Conn, event: AccountsValidated, tags: dict[str, dict[str, str]], changed: list[str]
) -> list[str]:
    """Store the page's tags once; returns the message id of the page that goes on to the
    reconciler (nothing when a duplicate delivery finds every account moved on)."""
    if not tags:
        return []
    ids = sorted(tags)
    stored = conn.execute(
        SQL["store_tags"],
        (ids, [Jsonb(tags[a]) for a in ids], [a in changed for a in ids], event.sync_id),
    ).fetchall()
    if not stored:
        return []
    harvested = TagsHarvested(
        org_id=event.org_id,
        sync_id=event.sync_id,
        account_ids=tuple(sorted(r["account_id"] for r in stored)),
        redrive=event.redrive,
        lane=event.lane,
    )
    return emit(conn, [harvested])
