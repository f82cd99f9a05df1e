"""Discovery (org-registered → account-discovered): walk the OU tree, decide each account's fate.

`discover` is the stage, in four parts: get, `walk` (discovery_walk.py) pages through roots, OUs
and accounts parent by parent, so memory holds one page and the stack of OUs still to visit,
never the organization; transform, `judge` (discovery_decisions.py) is pure; load, `load_page`
(discovery_load.py) upserts one page of accounts at a time, set-based, and the page goes on
downstream as one event per next stage; cleanup, `finish` removes accounts a *complete* walk
did not see; after a failed walk nothing is removed. Only the organization's latest sync
walks: an older one gives way (`newer_sync`) before each page and before its cleanup.

The names other modules and tests used from here before the split are importable as before.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from botocore.exceptions import BotoCoreError, ClientError
from psycopg.types.json import Jsonb

from orgsync.pipelines.aws_errors import classify
from orgsync.pipelines.discovery_decisions import ImportDecision, judge, regrouped, summarize
from orgsync.pipelines.discovery_load import Selection, finish, load_page
from orgsync.pipelines.discovery_walk import (
    PAGE_ATTEMPTS,
    PAGE_BACKOFF_CAP,
    PAGE_SIZE,
    MalformedAnswer,
    SeenAccount,
    malformed_error,
    walk,
)
from orgsync.pipelines.events import OrgRegistered
from orgsync.pipelines.orgs import load_organization
from orgsync.pipelines.outbox import emit
from orgsync.pipelines.references import look_up
from orgsync.pipelines.sql import load
from orgsync.pipelines.stage import Conn, Deps, Outcome, StageResult, rejected

SQL = load("orgsync.pipelines")
# accounts stored per transaction: an incremental sync sends few of them on, so a walk's pages
# are stored many at a time; what is sent on still goes in pages of PAGE_MAX
LOAD_MAX = 500

# what tests, benchmarks and the worker use from here, wherever it lives now
__all__ = [
    "PAGE_ATTEMPTS",
    "PAGE_BACKOFF_CAP",
    "PAGE_SIZE",
    "ImportDecision",
    "MalformedAnswer",
    "SeenAccount",
    "discover",
    "finish",
    "judge",
    "load_page",
    "malformed_error",
    "walk",
]


def discover(deps: Deps, event: OrgRegistered, *, may_retry: bool = False) -> StageResult:
    """Walk the organization, storing and sending on one page of accounts at a time, then
    close the walk. A transient AWS failure that outlasts the page retries gives RETRY while
    `may_retry` (the actor runs the walk again: pages already stored are not sent back to the
    start); after that, and on any other failure, the walk is closed as incomplete with the
    error, and nothing is removed."""
    with deps.connect() as conn:
        found = look_up(conn, event)
        org = None if found.problem else load_organization(conn, deps.keyring, event.org_id)
        mode = conn.execute(SQL["sync_mode"], (event.sync_id,)).fetchone()
        if org is not None and mode is not None and (newer := newer_sync(conn, event.sync_id)):
            return give_way(conn, event.sync_id, newer, Counter())
    if org is None or mode is None:
        return rejected(found.problem or f"no organization {event.org_id}")
    selection = Selection(mode["mode"], deps.revalidate_after, deps.reharvest_after)
    tally: Counter[str] = Counter()
    malformed: list[str] = []  # AWS answers missing a field: skipped, the walk incomplete
    error = code = newer = None
    sent = 0
    try:
        client = deps.organizations(org)
        batches = walk(client, org.filters.limit_ou_ids, deps.sleep, malformed=malformed)
        for page in deps.read_ahead(regrouped(batches, LOAD_MAX)):
            with deps.connect() as conn:
                if newer := newer_sync(conn, event.sync_id):
                    break
                loaded = load_page(conn, org, event.sync_id, page, tally, selection)
                ids = emit(conn, [replace(e, lane=event.lane) for e in loaded])
            deps.relay(ids)
            sent += len(ids)
    except MalformedAnswer as failure:
        error, code = f"MalformedAnswer: {failure}", "MalformedAnswer"
    except (ClientError, BotoCoreError, KeyError) as failure:
        verdict = classify(failure)
        if verdict.transient and may_retry:
            return StageResult(
                Outcome.RETRY,
                counts={"events": sent},
                error_code=verdict.code,
                reason=f"{verdict.code}: {verdict.message}",
            )
        error, code = f"{verdict.code}: {verdict.message}", verdict.code
    if malformed and error is None:
        error, code = malformed_error(malformed), "MalformedAnswer"
    with deps.connect() as conn:
        if newer := newer or newer_sync(conn, event.sync_id):
            return give_way(conn, event.sync_id, newer, tally, sent)
        guard = (deps.removal_limit, deps.removal_min)
        counts = finish(conn, org.org_id, event.sync_id, tally, error, *guard)
    return StageResult(
        Outcome.DONE,
        counts={"counts": counts, "complete": error is None, "events": sent},
        error_code=code,
        reason=error,
    )


def newer_sync(conn: Conn, sync_id: str) -> str | None:
    """The organization's sync that started after `sync_id`, if there is one. A walk gives way
    to it: two walks would take the accounts from each other page by page, and the older one's
    cleanup would remove those the newer one had taken (a walk redelivered after a crash, or a
    sync started while another was walking)."""
    row = conn.execute(SQL["newer_sync"], (sync_id,)).fetchone()
    return row["sync_id"] if row else None


def give_way(
    conn: Conn, sync_id: str, newer: str, tally: Counter[str], sent: int = 0
) -> StageResult:
    """Stop the walk without cleaning up; its sync, if still open, is closed as incomplete."""
    reason = f"sync {newer} started after this one and took over its walk"
    conn.execute(SQL["close_superseded_walk"], (reason, Jsonb(summarize(tally)), sync_id))
    return StageResult(Outcome.SKIPPED, counts={"events": sent}, reason=reason)
