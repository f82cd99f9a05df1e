"""Registration (org-registration → org-registered), a stage like the others.

The middleware decodes the message into a `RegistrationMessage`; `register` then decides it in
three steps, never holding a transaction across an AWS call:
1. read: formatting of every field, all problems at once (`request_rules`), an earlier verdict
   on the same request id, the organization it updates, the nickname;
2. check, with no transaction open: the live checks against AWS (`registration_checks`), the
   scope ids and the change-event queue when they changed;
3. write, in one transaction that checks again what the read found (a redelivery or another
   request may have decided meanwhile): the organization, its verdict and the sync it starts,
   whose event goes through the outbox.
A rejected request writes nothing but its verdict.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from orgsync.pipelines import audit, nicknames
from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.events import BULK, LIVE, OrgRegistered
from orgsync.pipelines.idempotency import request_digest, same_request
from orgsync.pipelines.orgs import Organization, load_organization, seal_credentials
from orgsync.pipelines.outbox import emit
from orgsync.pipelines.registration_checks import LiveCheck, check_live, check_queue
from orgsync.pipelines.request_rules import (
    Credentials,
    Filters,
    Problem,
    RegistrationRequest,
    check_request,
    redacted,
)
from orgsync.pipelines.resync import FULL
from orgsync.pipelines.scope import scope_problem
from orgsync.pipelines.sql import load
from orgsync.pipelines.stage import Conn, Deps, Outcome, StageResult
from orgsync.pipelines.verdicts import Verdict, decided, record, reject_malformed, reused

SQL = load("orgsync.pipelines")
CHANGED_MEANWHILE = "the organization changed while this request was checked; send it again"


@dataclass(frozen=True)
class RegistrationMessage:
    """What a registration message carries: the request as published (its shape is this
    stage's to judge), or, when the transport found none, the problem that says why. The
    message id stands in for a request id the request does not give."""

    message_id: str
    request: object
    problem: Problem | None = None
    # who asked: what the publishing process (console, API, CLI) says in the message's options,
    # else `amqp:<the AMQP user_id RabbitMQ vouched for>` (services/adapters/broker.py)
    by: audit.By = audit.NOBODY_KNOWN
    broker_user: str | None = None


@dataclass(frozen=True)
class Asked:
    """A well-formed request not decided yet, and what the read found for it."""

    request: RegistrationRequest
    request_id: str
    digest: str
    existing: Organization | None
    live: LiveCheck = field(default_factory=LiveCheck)
    message: RegistrationMessage | None = None  # who asked, for the audit trail

    @property
    def kind(self) -> str:
        return "update" if self.request.is_update else "register"


def register(deps: Deps, message: RegistrationMessage) -> StageResult:
    """Decide a registration or update request and store what it changes."""
    with deps.connect() as conn:
        asked = read(conn, deps.keyring, message, deps.sqs_endpoint)
    if isinstance(asked, Verdict):
        return _result(asked)
    asked, problems, warnings = check(deps, asked)
    with deps.connect() as conn:
        if problems:
            return _result(_reject(conn, asked, problems, warnings))
        verdict, ids = write(conn, deps.keyring, asked)
    deps.relay(ids)
    return _result(verdict, ids)


def read(
    conn: Conn, keyring: Keyring, message: RegistrationMessage, sqs_endpoint: str | None
) -> Verdict | Asked:
    """The verdict when the request can be decided without AWS (recorded), else what to check."""
    if message.problem is not None:
        return _undecodable(conn, message)
    raw = message.request
    request, problems = check_request(raw, sqs_endpoint)
    # the request's own id, unless it breaks its rule: then it is no key to store a verdict under
    request_id = message.message_id
    if (
        isinstance(raw, dict)
        and "request_id" in raw
        and not any(p.field == "request_id" for p in problems)
    ):
        request_id = raw["request_id"]
    digest = request_digest(request_id, raw)
    if (earlier := _earlier(conn, request_id, digest)) is not None:
        return earlier
    if request is None:
        return reject_malformed(conn, request_id, raw, problems, digest)
    existing = load_organization(conn, keyring, request.org_id) if request.org_id else None
    asked = Asked(request, request_id, digest, existing, message=message)
    if problem := _stored_problem(conn, request, existing):
        return _reject(conn, asked, [problem])
    return asked


def check(deps: Deps, asked: Asked) -> tuple[Asked, list[Problem], list[str]]:
    """The live checks, each only where the request changes what it checks, with no transaction
    open: the request with what AWS answered, the problems and the verdict's warnings."""
    assert deps.assume_org_role is not None, "registration needs deps.assume_org_role"
    assume = deps.assume_org_role
    request, existing = asked.request, asked.existing
    if request.credentials is not None:
        asked = replace(asked, live=check_live(assume, request.credentials))
        if asked.live.problems:
            return asked, asked.live.problems, asked.live.warnings
    live_org = asked.live.aws_org_id
    if existing is None:
        with deps.connect() as conn:
            found = load_organization(conn, deps.keyring, live_org) if live_org else None
        if problem := _registered_already(live_org, found):
            return asked, [problem], []
    elif live_org not in (None, existing.org_id):
        belongs = f"the role belongs to organization {live_org}, not {existing.org_id}"
        return asked, [Problem("org_role_arn", belongs)], []
    credentials = request.credentials or (existing.credentials if existing else None)
    assert credentials is not None
    filters = request.filters(existing.filters if existing else None)
    if request.filter_changes.get("limit_ou_ids") and (
        out_of_org := scope_problem(assume, credentials, filters.limit_ou_ids)
    ):
        return asked, [out_of_org], asked.live.warnings
    url = filters.events_queue_url
    if request.filter_changes.get("events_queue_url") and url:
        return asked, check_queue(assume, credentials, url), asked.live.warnings
    return asked, [], asked.live.warnings


def write(conn: Conn, keyring: Keyring, asked: Asked) -> tuple[Verdict, list[str]]:
    """Store an accepted request in one transaction, after checking again what the read found;
    returns the verdict and the outbox ids of the sync it starts."""
    request = asked.request
    org_id = request.org_id or asked.live.aws_org_id
    assert org_id is not None
    with conn.transaction():
        # one decision per organization at a time: two requests for it never interleave here
        conn.execute(SQL["lock_registration"], (org_id,))
        if (earlier := _earlier(conn, asked.request_id, asked.digest)) is not None:
            return earlier, []
        existing = load_organization(conn, keyring, org_id)
        problem = _stored_problem(conn, request, existing)
        if problem is None and asked.existing is None:
            problem = _registered_already(org_id, existing)
        elif problem is None and existing != asked.existing:
            problem = Problem("org_id", CHANGED_MEANWHILE)
        if problem is not None:
            return _reject(conn, asked, [problem]), []
        credentials = request.credentials or (existing.credentials if existing else None)
        assert credentials is not None
        nickname = request.nickname or (existing.nickname if existing else None)
        assert nickname is not None
        filters = request.filters(existing.filters if existing else None)
        store_organization(
            conn, keyring, org_id, nicknames.normalised(nickname), credentials, filters
        )
        verdict = Verdict(
            request_id=asked.request_id,
            accepted=True,
            org_id=org_id,
            reasons=[],
            warnings=asked.live.warnings,
        )
        record(conn, verdict, asked.kind, redacted(request), asked.digest)
        _audit(conn, asked, org_id, existing, nicknames.normalised(nickname), filters)
        ids = emit(conn, [start_sync(conn, org_id, asked.kind)])
    return verdict, ids


def _audit(
    conn: Conn,
    asked: Asked,
    org_id: str,
    existing: Organization | None,
    nickname: str,
    filters: Filters,
) -> None:
    """The accepted request's audit row: the nickname and filters old -> new, and only whether
    the credentials were replaced (they are secrets)."""
    old = {} if existing is None else {"nickname": existing.nickname, **asdict(existing.filters)}
    changes = audit.old_new(old, {"nickname": nickname, **asdict(filters)})
    if asked.request.credentials is not None:
        changes["credentials"] = audit.SECRET
    message = asked.message or RegistrationMessage(asked.request_id, None)
    who, broker_user = message.by, message.broker_user
    audit.record(
        conn,
        who.actor,
        who.via,
        f"organization.{asked.kind}",
        org_id,
        changes,
        subject=asked.request_id,
        broker_user=broker_user,
    )


def _undecodable(conn: Conn, message: RegistrationMessage) -> Verdict:
    assert message.problem is not None
    if message.problem.field != "message":  # a readable body that is not one request
        return reject_malformed(conn, message.message_id, None, [message.problem])
    if (earlier := decided(conn, message.message_id)) is not None:
        return earlier
    verdict = Verdict(
        request_id=message.message_id,
        accepted=False,
        org_id=None,
        reasons=[message.problem],
        warnings=[],
    )
    return record(conn, verdict, "malformed", {"unreadable": True})


def _earlier(conn: Conn, request_id: str, digest: str) -> Verdict | None:
    """The verdict already given on this request id: the same request's, or a rejection of the
    id's reuse for another request."""
    if (earlier := decided(conn, request_id)) is None:
        return None
    return earlier if same_request(conn, request_id, digest) else reused(conn, request_id, digest)


def _stored_problem(
    conn: Conn, request: RegistrationRequest, existing: Organization | None
) -> Problem | None:
    """What PostgreSQL alone refuses: an update of an unknown organization (`existing` is what
    is stored under the request's org id), a nickname taken."""
    if request.org_id is not None and existing is None:
        return Problem("org_id", f"no organization {request.org_id} is registered")
    if request.nickname is not None:
        return nicknames.problem(conn, request.nickname, request.org_id)
    return None


def _registered_already(org_id: str | None, found: Organization | None) -> Problem | None:
    """A new registration's organization (`found` stored under its id) is refused if known."""
    if found is None:
        return None
    return Problem(
        "org_role_arn",
        f"organization {org_id} is already registered; use `orgsync update` to change it",
    )


def _reject(
    conn: Conn, asked: Asked, problems: list[Problem], warnings: list[str] | None = None
) -> Verdict:
    verdict = Verdict(
        request_id=asked.request_id,
        accepted=False,
        org_id=asked.request.org_id,
        reasons=problems,
        warnings=warnings or [],
    )
    return record(conn, verdict, asked.kind, redacted(asked.request), asked.digest)


def _result(verdict: Verdict, message_ids: list[str] | None = None) -> StageResult:
    return StageResult(
        Outcome.DONE,
        counts={
            "request_id": verdict.request_id,
            "org_id": verdict.org_id,
            "accepted": verdict.accepted,
            "reasons": len(verdict.reasons),
        },
        message_ids=message_ids or [],
    )


def start_sync(
    conn: psycopg.Connection[dict[str, Any]],
    org_id: str,
    trigger: str,
    *,
    confirm_removals: bool = False,
    mode: str = FULL,
) -> OrgRegistered:
    """A new sync of `org_id` (its row) and the event that starts its walk; `mode` says what
    the walk sends down the stages (pipelines/resync.py)."""
    sync_id = str(uuid.uuid4())
    conn.execute(SQL["start_sync"], (sync_id, org_id, trigger, confirm_removals, mode))
    # an organization's first sync is awaited by whoever registered it; re-syncs are bulk work
    lane = LIVE if trigger == "register" else BULK
    return OrgRegistered(org_id=org_id, sync_id=sync_id, lane=lane)


def store_organization(
    conn: psycopg.Connection[dict[str, Any]],
    keyring: Keyring,
    org_id: str,
    nickname: str,
    credentials: Credentials,
    filters: Filters,
) -> None:
    """Insert or replace the organization's row, its credentials sealed to it."""
    sealed = seal_credentials(keyring, org_id, credentials)
    conn.execute(
        SQL["store_organization"],
        {
            "org_id": org_id,
            "nickname": nickname,
            "management_account_id": credentials.management_account_id,
            "partition": credentials.partition,
            "key_id": sealed.key_id,
            "credentials": sealed.blob,
            "exclude_prefixes": list(filters.exclude_prefixes),
            "auto_remove_suspended": filters.auto_remove_suspended,
            "auto_badge": filters.auto_badge,
            "limit_ou_ids": list(filters.limit_ou_ids),
            "sync_interval_seconds": filters.sync_interval_seconds,
            "events_queue_url": filters.events_queue_url,
            # SQL NULL, not JSON null, for no override
            "aws_rates": None if filters.aws_rates is None else Jsonb(filters.aws_rates),
        },
    )
