"""Discovery (org-registered → account-discovered): walk the OU tree, decide each account's fate.

`discover` is the stage. get: `walk` pages through roots, OUs and accounts parent by parent, so
memory holds one page and the stack of OUs still to visit, never the organization. transform:
`judge` is pure. load: `load_page` upserts one page of accounts at a time, set-based, and the
page goes on downstream as one event per next stage. cleanup: `finish` removes accounts a
*complete* walk did not see; after a failed walk nothing is removed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError, PaginationError
from psycopg.types.json import Jsonb

from orgsync.pipelines import removal_guard
from orgsync.pipelines.aws_errors import backoff_seconds, classify
from orgsync.pipelines.events import (
    PAGE_MAX,
    AccountsDiscovered,
    AccountsValidated,
    Event,
    OrgRegistered,
)
from orgsync.pipelines.orgs import Organization, load_organization
from orgsync.pipelines.outbox import emit
from orgsync.pipelines.references import look_up
from orgsync.pipelines.request_rules import Filters
from orgsync.pipelines.stage import Conn, Deps, Outcome, StageResult, rejected

SUSPENDED_STATES = frozenset({"SUSPENDED", "PENDING_CLOSURE", "CLOSED"})
PAGE_SIZE = 20  # the most AWS Organizations returns in one page
PAGE_ATTEMPTS = 6  # per page, each one after botocore's own retries
PAGE_BACKOFF_BASE = 1.0  # seconds; full jitter, doubling per attempt ...
PAGE_BACKOFF_CAP = 20.0  # ... at most 1+2+4+8+16 s of waiting before a page gives up
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class Parent:
    parent_id: str
    path: str
    in_scope: bool


@dataclass(frozen=True)
class SeenAccount:
    account_id: str
    name: str
    email: str | None
    aws_state: str
    org_path: str
    parent_id: str
    in_scope: bool


@dataclass(frozen=True)
class Verdict:
    action: Literal["import", "suspend", "exclude"]
    reason: str | None = None


def account_state(raw: dict[str, Any]) -> str:
    """AWS `State`, falling back to `Status`, which AWS retires in September 2026."""
    return str(raw.get("State") or raw.get("Status") or "UNKNOWN").upper()


def judge(account: SeenAccount, filters: Filters) -> Verdict:
    """What discovery does with one account, by the organization's filters."""
    if not account.in_scope:
        return Verdict("exclude", "out_of_scope")
    for prefix in filters.exclude_prefixes:
        if account.name.startswith(prefix):
            return Verdict("exclude", f"name_prefix:{prefix}")
    if account.aws_state in SUSPENDED_STATES:
        if filters.auto_remove_suspended:
            return Verdict("exclude", "suspended")
        return Verdict("suspend", f"account is {account.aws_state} in AWS")
    return Verdict("import")


def pages(
    client: Any, operation: str, key: str, sleep: Sleep = time.sleep, **params: Any
) -> Iterator[list[dict[str, Any]]]:
    """Every page of a list call, token by token; AWS may send an empty page that still carries
    a token. Paging by hand, not with a botocore paginator, so any object with the three list
    methods (a fake in a test or benchmark) can be walked."""
    call = getattr(client, operation)
    token: str | None = None
    while True:
        page = retried(call, sleep, **params, MaxResults=PAGE_SIZE, **_next(token))
        yield page.get(key, [])
        previous, token = token, page.get("NextToken")
        if not token:
            return
        if token == previous:
            raise PaginationError(message=f"{operation} returned the same NextToken twice")


def _next(token: str | None) -> dict[str, str]:
    return {"NextToken": token} if token else {}


def retried(call: Any, sleep: Sleep, **params: Any) -> dict[str, Any]:
    """One page, retried with backoff while AWS throttles or fails transiently. This comes on
    top of botocore's few quick retries, so that a busy organization does not send a
    100,000-account walk back to the start over one page."""
    for attempt in range(PAGE_ATTEMPTS):
        try:
            return dict(call(**params))
        except (ClientError, BotoCoreError) as error:
            if attempt + 1 == PAGE_ATTEMPTS or not classify(error).transient:
                raise
            sleep(backoff_seconds(attempt, base=PAGE_BACKOFF_BASE, cap=PAGE_BACKOFF_CAP))
    raise AssertionError("not reached")


class MalformedAnswer(ValueError):
    """AWS answered without a field the walk cannot do without."""


def walk(
    client: Any,
    limit_ou_ids: tuple[str, ...],
    sleep: Sleep = time.sleep,
    *,
    malformed: list[str] | None = None,
) -> Iterator[list[SeenAccount]]:
    """Pages of accounts, parent by parent, from every root down (depth first, so the stack
    holds the OUs of one branch and their siblings, never the whole tree's accounts).

    An account or OU that AWS lists without a field the walk needs (an id, a name, a state)
    raises MalformedAnswer; with a `malformed` list it is noted there and skipped instead, so
    the rest of the organization is still walked and the caller marks the walk incomplete."""
    scope = set(limit_ou_ids)
    roots = [root for page in pages(client, "list_roots", "Roots", sleep) for root in page]
    if not roots:
        # a complete walk of nothing would remove every account
        raise MalformedAnswer("ListRoots returned no root")
    stack = []
    for root in roots:
        if _noted(malformed, _missing(root, "ListRoots", "a root", "Id")):
            continue
        stack.append(
            Parent(root["Id"], root.get("Name") or "Root", not scope or root["Id"] in scope)
        )
    return below(client, stack, scope, sleep, malformed=malformed)


def below(
    client: Any,
    stack: list[Parent],
    scope: Collection[str],
    sleep: Sleep = time.sleep,
    *,
    malformed: list[str] | None = None,
) -> Iterator[list[SeenAccount]]:
    """Pages of the accounts below the parents on `stack`, depth first (`walk`'s descent, from
    any parents: the roots, or one OU the change-event feed re-reads)."""
    while stack:
        parent = stack.pop()
        for page in pages(
            client, "list_accounts_for_parent", "Accounts", sleep, ParentId=parent.parent_id
        ):
            batch = [
                seen(raw, parent)
                for raw in page
                if not _noted(malformed, _missing_account_fields(raw, parent))
            ]
            if batch:
                yield batch
        for page in pages(
            client,
            "list_organizational_units_for_parent",
            "OrganizationalUnits",
            sleep,
            ParentId=parent.parent_id,
        ):
            stack.extend(
                Parent(
                    ou["Id"], f"{parent.path}/{ou['Name']}", parent.in_scope or ou["Id"] in scope
                )
                for ou in page
                if not _noted(malformed, _missing(ou, _ou_call(parent), "an OU", "Id", "Name"))
            )


def _missing(raw: dict[str, Any], call: str, what: str, *names: str) -> str | None:
    missing = [name for name in names if not isinstance(raw.get(name), str) or not raw[name]]
    if not missing:
        return None
    ident = raw.get("Id") if isinstance(raw.get("Id"), str) else None
    named = f" {ident[:40]}" if ident else ""
    return f"{call} returned {what}{named} without {', '.join(missing)}"


def _ou_call(parent: Parent) -> str:
    return f"ListOrganizationalUnitsForParent({parent.parent_id})"


def _missing_account_fields(raw: dict[str, Any], parent: Parent) -> str | None:
    call = f"ListAccountsForParent({parent.parent_id})"
    problem = _missing(raw, call, "an account", "Id", "Name")
    if problem is None and not (raw.get("State") or raw.get("Status")):
        problem = f"{call} returned an account {str(raw['Id'])[:40]} without State or Status"
    return problem


def _noted(malformed: list[str] | None, problem: str | None) -> bool:
    """True when `problem` is to be skipped (noted in `malformed`); raises without a list."""
    if problem is None:
        return False
    if malformed is None:
        raise MalformedAnswer(problem)
    malformed.append(problem)
    return True


def malformed_error(malformed: list[str]) -> str:
    """The sync's error for a walk that skipped malformed entries: the first few, and a count."""
    shown = "; ".join(malformed[:3])
    more = f" (and {len(malformed) - 3} more)" if len(malformed) > 3 else ""
    return f"MalformedAnswer: {len(malformed)} skipped: {shown}{more}"


def seen(raw: dict[str, Any], parent: Parent) -> SeenAccount:
    return SeenAccount(
        account_id=str(raw["Id"]),
        name=str(raw.get("Name") or ""),
        email=raw.get("Email"),
        aws_state=account_state(raw),
        org_path=parent.path,
        parent_id=parent.parent_id,
        in_scope=parent.in_scope,
    )


UPSERT_ACCOUNTS = """
INSERT INTO accounts AS a (account_id, org_id, name, email, aws_state, org_path, parent_id,
                           status, status_reason, managed_by_org, sync_id, stage, stage_at)
SELECT v.account_id, %(org_id)s, v.name, v.email, v.aws_state, v.org_path, v.parent_id,
       v.status, v.status_reason, true, %(sync_id)s::uuid, v.stage, now()
FROM unnest(%(account_id)s::text[], %(name)s::text[], %(email)s::text[], %(aws_state)s::text[],
            %(org_path)s::text[], %(parent_id)s::text[], %(status)s::text[],
            %(status_reason)s::text[], %(stage)s::text[])
     AS v(account_id, name, email, aws_state, org_path, parent_id, status, status_reason, stage)
ON CONFLICT (account_id) DO UPDATE SET
    org_id = EXCLUDED.org_id, name = EXCLUDED.name, email = EXCLUDED.email,
    aws_state = EXCLUDED.aws_state, org_path = EXCLUDED.org_path, parent_id = EXCLUDED.parent_id,
    -- an account the organization finds is managed by it: its own credentials give way
    managed_by_org = true, credentials = NULL, credentials_key_id = NULL,
    status = CASE WHEN EXCLUDED.status = 'suspended' THEN 'suspended'
                  WHEN a.status IN ('removed', 'suspended') THEN 'pending'
                  ELSE a.status END,
    status_reason = CASE WHEN EXCLUDED.status = 'suspended' THEN EXCLUDED.status_reason
                         WHEN a.status IN ('removed', 'suspended') THEN NULL
                         ELSE a.status_reason END,
    sync_id = EXCLUDED.sync_id, stage = EXCLUDED.stage, stage_at = now(), updated_at = now()
-- a repeated walk of the same sync must not send accounts back to the start
WHERE a.sync_id IS DISTINCT FROM EXCLUDED.sync_id
"""

UPSERT_EXCLUDED = """
INSERT INTO excluded_accounts (org_id, account_id, name, org_path, aws_state, reason, sync_id)
SELECT %s, v.account_id, v.name, v.org_path, v.aws_state, v.reason, %s::uuid
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
     AS v(account_id, name, org_path, aws_state, reason)
ON CONFLICT (org_id, account_id) DO UPDATE SET
    name = EXCLUDED.name, org_path = EXCLUDED.org_path, aws_state = EXCLUDED.aws_state,
    reason = EXCLUDED.reason, sync_id = EXCLUDED.sync_id, seen_at = now()
"""

# at the end of a complete walk, accounts it excluded (with their reason) before those it did
# not see at all (left_organization)
REMOVE_EXCLUDED = """
UPDATE accounts a SET status = 'removed', status_reason = e.reason, sync_id = e.sync_id,
                      stage = 'reconciled', stage_at = now(), updated_at = now()
FROM excluded_accounts e
WHERE e.org_id = %(org_id)s AND e.sync_id = %(sync_id)s::uuid
  AND a.account_id = e.account_id AND a.org_id = e.org_id AND a.status <> 'removed'
RETURNING a.account_id, e.reason
"""

IMPORTED_FIELDS = ("account_id", "name", "email", "aws_state", "org_path", "parent_id")


def load_page(
    conn: Conn, org: Organization, sync_id: str, accounts: list[SeenAccount], tally: Counter[str]
) -> list[Event]:
    """Store one page of accounts in a few set-based statements; returns the events that start
    them on their way downstream: the active ones to validation, the suspended ones straight to
    harvesting."""
    accounts = list({a.account_id: a for a in accounts}.values())  # one row per account
    imported: list[tuple[SeenAccount, Verdict]] = []
    excluded: list[tuple[SeenAccount, str]] = []
    for account in accounts:
        verdict = judge(account, org.filters)
        tally["seen"] += 1
        if verdict.action == "exclude":
            tally[f"excluded:{verdict.reason}"] += 1
            excluded.append((account, verdict.reason or "excluded"))
        else:
            tally["suspended" if verdict.action == "suspend" else "imported"] += 1
            imported.append((account, verdict))
    with conn.cursor() as cur:
        if imported:
            columns: dict[str, list[Any]] = {
                name: [getattr(a, name) for a, _ in imported] for name in IMPORTED_FIELDS
            }
            suspended = [v.action == "suspend" for _, v in imported]
            columns["status"] = ["suspended" if s else "pending" for s in suspended]
            columns["status_reason"] = [v.reason for _, v in imported]
            columns["stage"] = ["validated" if s else "discovered" for s in suspended]
            cur.execute(UPSERT_ACCOUNTS, {**columns, "org_id": org.org_id, "sync_id": sync_id})
        cur.execute(
            "DELETE FROM excluded_accounts WHERE org_id = %s AND account_id = ANY(%s)",
            (org.org_id, [a.account_id for a, _ in imported]),
        )
        if excluded:
            ids = [a.account_id for a, _ in excluded]
            reasons = [reason for _, reason in excluded]
            cur.execute(
                UPSERT_EXCLUDED,
                (
                    org.org_id,
                    sync_id,
                    ids,
                    [a.name for a, _ in excluded],
                    [a.org_path for a, _ in excluded],
                    [a.aws_state for a, _ in excluded],
                    reasons,
                ),
            )
    active = tuple(a.account_id for a, v in imported if v.action == "import")
    suspended_ids = tuple(a.account_id for a, v in imported if v.action == "suspend")
    events: list[Event] = []
    if active:
        events.append(AccountsDiscovered(org_id=org.org_id, sync_id=sync_id, account_ids=active))
    if suspended_ids:
        events.append(
            AccountsValidated(org_id=org.org_id, sync_id=sync_id, account_ids=suspended_ids)
        )
    return events


def regrouped(batches: Iterator[list[SeenAccount]], size: int) -> Iterator[list[SeenAccount]]:
    """The walk's pages (one parent's accounts each, 20 at most) gathered into pages of up to
    `size` accounts, so a small OU does not cost a message per stage of its own."""
    page: list[SeenAccount] = []
    try:
        for batch in batches:
            if page and len(page) + len(batch) > size:
                yield page
                page = []
            page += batch
            while len(page) >= size:
                yield page[:size]
                page = page[size:]
    except Exception:
        if page:  # what was read before the walk failed is stored all the same
            yield page
        raise
    if page:
        yield page


REMOVE_UNSEEN = """
UPDATE accounts SET status = 'removed', status_reason = 'left_organization', sync_id = %(sync_id)s,
                    stage = 'reconciled', stage_at = now(), updated_at = now()
WHERE org_id = %(org_id)s AND managed_by_org AND status <> 'removed'
  AND sync_id IS DISTINCT FROM %(sync_id)s
  -- a change event read it from AWS while this walk ran: seen, under the feed's sync
  AND (feed_at IS NULL OR feed_at < (SELECT started_at FROM syncs WHERE sync_id = %(sync_id)s))
RETURNING account_id
"""


def finish(
    conn: Conn,
    org_id: str,
    sync_id: str,
    tally: Counter[str],
    error: str | None,
    removal_limit: float = removal_guard.DEFAULT_LIMIT,
    removal_min: int = removal_guard.DEFAULT_MIN,
) -> dict[str, Any]:
    """Close the walk: clean up only when it was complete, and only as much as the removal
    guard allows; record the sync's counts (and why it is held, when it is)."""
    held = None
    if error is None:
        ids = {"org_id": org_id, "sync_id": sync_id}
        found = conn.execute(removal_guard.COUNTS, ids).fetchone()
        assert found is not None
        decision = removal_guard.decide(
            found["accounts"],
            found["removing"],
            limit=removal_limit,
            at_least=removal_min,
            confirmed=bool(found["confirmed"]),
        )
        held = decision.held
        if decision.remove:
            for row in conn.execute(REMOVE_EXCLUDED, ids).fetchall():
                tally[f"removed:{row['reason']}"] += 1
            if removed := conn.execute(REMOVE_UNSEEN, ids).fetchall():
                tally["removed:left_organization"] += len(removed)
            conn.execute(
                "DELETE FROM excluded_accounts WHERE org_id = %s AND sync_id <> %s",
                (org_id, sync_id),
            )
    counts = summarize(tally)
    conn.execute(
        "UPDATE syncs SET walked_at = now(), complete = %s, error = %s, counts = %s, held = %s"
        " WHERE sync_id = %s",
        (error is None, error, Jsonb(counts), held, sync_id),
    )
    return counts


def discover(deps: Deps, event: OrgRegistered, *, may_retry: bool = False) -> StageResult:
    """Walk the organization, storing and sending on one page of accounts at a time, then
    close the walk. A transient AWS failure that outlasts the page retries gives RETRY while
    `may_retry` (the actor runs the walk again: pages already stored are not sent back to the
    start); after that, and on any other failure, the walk is closed as incomplete with the
    error, and nothing is removed."""
    with deps.connect() as conn:
        found = look_up(conn, event)
        org = None if found.problem else load_organization(conn, deps.keyring, event.org_id)
    if org is None:
        return rejected(found.problem or f"no organization {event.org_id}")
    tally: Counter[str] = Counter()
    malformed: list[str] = []  # AWS answers missing a field: skipped, the walk incomplete
    error = code = None
    sent = 0
    try:
        client = deps.organizations(org)
        batches = walk(client, org.filters.limit_ou_ids, deps.sleep, malformed=malformed)
        for page in deps.read_ahead(regrouped(batches, PAGE_MAX)):
            with deps.connect() as conn:
                ids = emit(conn, load_page(conn, org, event.sync_id, page, tally))
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
        guard = (deps.removal_limit, deps.removal_min)
        counts = finish(conn, org.org_id, event.sync_id, tally, error, *guard)
    return StageResult(
        Outcome.DONE,
        counts={"counts": counts, "complete": error is None, "events": sent},
        error_code=code,
        reason=error,
    )


def summarize(tally: Counter[str]) -> dict[str, Any]:
    counts: dict[str, Any] = {
        "seen": 0,
        "imported": 0,
        "suspended": 0,
        "excluded": {},
        "removed": {},
    }
    for key, n in tally.items():
        group, _, reason = key.partition(":")
        if reason:
            counts[group][reason] = n
        else:
            counts[key] = n
    return counts
