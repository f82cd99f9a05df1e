"""Registration (org-registration → org-registered), in the order the product documents it.

1. formatting of every field, all problems at once (`request_rules`);
2. AssumeRole into the organization role with the service's own credentials;
3. the role's permissions for every Organizations action the stages call: the IAM policy
   simulator first, each simulated denial confirmed with the real read-only call (the simulator
   cannot see SCPs with global condition keys), the real calls alone where the simulator
   cannot be called.
A rejected request writes nothing but its verdict.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from orgsync.pipelines import nicknames
from orgsync.pipelines.aws_errors import classify
from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.events import Event, OrgRegistered
from orgsync.pipelines.feed_queue import queue_access_problems
from orgsync.pipelines.idempotency import conflict_id, request_digest, reuse_reason, same_request
from orgsync.pipelines.orgs import load_organization, seal_credentials
from orgsync.pipelines.request_rules import Credentials, Filters, Problem, check_request, redacted
from orgsync.pipelines.scope import scope_problem

# Exactly the Organizations actions that registration, discovery and harvesting call.
REQUIRED_ACTIONS: tuple[str, ...] = (
    "organizations:DescribeOrganization",
    "organizations:ListRoots",
    "organizations:ListAccountsForParent",
    "organizations:ListOrganizationalUnitsForParent",
    "organizations:ListTagsForResource",
)


class AssumedRole(Protocol):
    organizations: Any
    iam: Any

    def queue(self, url: str) -> Any: ...


# The single argument of a registration message whose body could not be read at all: the
# consumer (services/adapters/broker.py) puts the reason there so that it is recorded like any
# request.
UNREADABLE = "orgsync:unreadable"

# assume(credentials, use_external_id) -> clients acting as the organization role
Assume = Callable[[Credentials, bool], AssumedRole]


@dataclass(frozen=True, kw_only=True)
class LiveCheck:
    aws_org_id: str | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Verdict:
    request_id: str
    accepted: bool
    org_id: str | None
    reasons: list[Problem]
    warnings: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "accepted": self.accepted,
            "org_id": self.org_id,
            "reasons": [asdict(p) for p in self.reasons],
            "warnings": self.warnings,
        }


def probes(orgs: Any, root_id: str) -> dict[str, Callable[[], object]]:
    """One harmless read-only call per required action."""
    return {
        "organizations:DescribeOrganization": orgs.describe_organization,
        "organizations:ListRoots": lambda: orgs.list_roots(MaxResults=1),
        "organizations:ListAccountsForParent": lambda: orgs.list_accounts_for_parent(
            ParentId=root_id, MaxResults=1
        ),
        "organizations:ListOrganizationalUnitsForParent": lambda: (
            orgs.list_organizational_units_for_parent(ParentId=root_id, MaxResults=1)
        ),
        "organizations:ListTagsForResource": lambda: orgs.list_tags_for_resource(
            ResourceId=root_id
        ),
    }


def simulated_denials(iam: Any, role_arn: str) -> set[str] | None:
    """Actions the IAM policy simulator denies the role, or None when it cannot be called."""
    try:
        results = iam.simulate_principal_policy(
            PolicySourceArn=role_arn, ActionNames=list(REQUIRED_ACTIONS)
        )["EvaluationResults"]
    except Exception:
        return None
    return {r["EvalActionName"] for r in results if r.get("EvalDecision") != "allowed"}


def check_live(assume: Assume, creds: Credentials) -> LiveCheck:
    try:
        role = assume(creds, True)
    except Exception as error:
        e = classify(error)
        reason = f"cannot assume the organization role: {e.code}: {e.message}"
        return LiveCheck(problems=[Problem("org_role_arn", scrub(reason, creds))])
    warnings: list[str] = []
    denied = simulated_denials(role.iam, creds.org_role_arn)
    if denied is None:
        warnings.append(
            "the IAM policy simulator could not be called; the real read-only "
            "calls decided the role's permissions"
        )
    orgs = role.organizations
    # these two answer what the probes of the other actions need: the org id and a root id
    try:
        org = orgs.describe_organization()["Organization"]
    except Exception as error:
        return LiveCheck(problems=[_may_not("organizations:DescribeOrganization", error, creds)])
    try:
        root_id = orgs.list_roots(MaxResults=1)["Roots"][0]["Id"]
    except Exception as error:
        return LiveCheck(problems=[_may_not("organizations:ListRoots", error, creds)])
    problems: list[Problem] = []
    for action, call in probes(orgs, root_id).items():
        if denied is not None and action not in denied:
            continue
        try:
            call()
        except Exception as error:
            problems.append(_may_not(action, error, creds))
            continue
        if denied is not None:
            warnings.append(
                f"the policy simulator denies {action} but the real call succeeded: probably a "
                "service control policy with global condition keys, which the simulator cannot "
                "evaluate (AWS's known issue); harvesting works"
            )
    if creds.external_id and _assumable_without_external_id(assume, creds):
        warnings.append(
            "the role can be assumed without the external id: its trust policy "
            "should require sts:ExternalId, or anyone who knows the ARN could use "
            "this service against it (confused deputy)"
        )
    return LiveCheck(aws_org_id=org["Id"], problems=problems, warnings=warnings)


def check_queue(assume: Assume, creds: Credentials, url: str) -> list[Problem]:
    """Can the organization role receive from and delete on the change-event queue?"""
    try:
        role = assume(creds, True)
        problems = queue_access_problems(role.queue(url), url)
    except Exception as error:
        e = classify(error)
        problems = [f"the queue could not be checked: {e.code}: {e.message}"]
    return [Problem("events_queue_url", scrub(p, creds)) for p in problems]


def _may_not(action: str, error: Exception, creds: Credentials) -> Problem:
    e = classify(error)
    return Problem(
        "org_role_arn", scrub(f"the role may not call {action}: {e.code}: {e.message}", creds)
    )


def scrub(text: str, creds: Credentials) -> str:
    """`text` (an AWS error message, say) without the request's role ARN, names or external id.

    AWS denials quote the role ARN and the assumed-role session; verdicts are stored, listed
    and logged, and credentials must appear in none of them.
    """
    arn = creds.org_role_arn
    secrets = [arn, arn.split(":", 5)[-1], arn.rsplit("/", 1)[-1], creds.org_session_name]
    if creds.external_id:
        secrets.append(creds.external_id)
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text


def _assumable_without_external_id(assume: Assume, creds: Credentials) -> bool:
    try:
        assume(creds, False)
    except Exception:
        return False
    return True


RECORD = """
INSERT INTO registrations
    (request_id, org_id, kind, request, decided_at, accepted, reasons, warnings, request_digest)
VALUES (%s, %s, %s, %s, now(), %s, %s, %s, %s)
ON CONFLICT (request_id) DO NOTHING
"""


def decided(conn: psycopg.Connection[dict[str, Any]], request_id: str) -> Verdict | None:
    row = conn.execute(
        "SELECT request_id, org_id, accepted, reasons, warnings FROM registrations"
        " WHERE request_id = %s AND decided_at IS NOT NULL",
        (request_id,),
    ).fetchone()
    if row is None:
        return None
    return Verdict(
        request_id=row["request_id"],
        accepted=row["accepted"],
        org_id=row["org_id"],
        reasons=[Problem(**p) for p in row["reasons"]],
        warnings=row["warnings"],
    )


def _record(
    conn: psycopg.Connection[dict[str, Any]],
    verdict: Verdict,
    kind: str,
    request: dict[str, Any],
    digest: str | None = None,
) -> Verdict:
    conn.execute(
        RECORD,
        (
            verdict.request_id,
            verdict.org_id,
            kind,
            Jsonb(request),
            verdict.accepted,
            Jsonb([asdict(p) for p in verdict.reasons]),
            Jsonb(verdict.warnings),
            digest,
        ),
    )
    return verdict


def unreadable_reason(raw: object) -> str | None:
    """Why the message could not be read, when `raw` is the consumer's stand-in for it."""
    if isinstance(raw, dict) and len(raw) == 1 and isinstance(raw.get(UNREADABLE), str):
        return str(raw[UNREADABLE])
    return None


def _reused(conn: psycopg.Connection[dict[str, Any]], request_id: str, digest: str) -> Verdict:
    key = conflict_id(request_id, digest)
    if (earlier := decided(conn, key)) is not None:
        return earlier
    verdict = Verdict(
        request_id=key,
        accepted=False,
        org_id=None,
        reasons=[Problem("request_id", reuse_reason(request_id))],
        warnings=[],
    )
    return _record(conn, verdict, "malformed", {"reused_request_id": request_id}, digest)


def reject_malformed(
    conn: psycopg.Connection[dict[str, Any]],
    request_id: str,
    raw: object,
    problems: list[Problem],
    digest: str | None = None,
) -> Verdict:
    # never the values: a malformed request may still carry credentials
    # and field names escaped: PostgreSQL text cannot hold NUL, logs should not hold newlines
    shape = (
        {"fields": sorted(k if k.isprintable() else ascii(k) for k in map(str, raw))}
        if isinstance(raw, dict)
        else {"type": type(raw).__name__}
    )
    verdict = Verdict(
        request_id=request_id, accepted=False, org_id=None, reasons=problems, warnings=[]
    )
    return _record(conn, verdict, "malformed", shape, digest)


def start_sync(
    conn: psycopg.Connection[dict[str, Any]],
    org_id: str,
    trigger: str,
    *,
    confirm_removals: bool = False,
) -> OrgRegistered:
    sync_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO syncs (sync_id, org_id, trigger, confirm_removals) VALUES (%s, %s, %s, %s)",
        (sync_id, org_id, trigger, confirm_removals),
    )
    return OrgRegistered(org_id=org_id, sync_id=sync_id)


def register(
    conn: psycopg.Connection[dict[str, Any]],
    keyring: Keyring,
    raw: object,
    fallback_request_id: str,
    assume: Assume,
    sqs_endpoint: str | None = None,
) -> tuple[Verdict, list[Event]]:
    """Decide a registration or update request and store what it changes.

    `sqs_endpoint` (AWS_ENDPOINT_URL) is where a simulated AWS's queue URLs live."""
    if (reason := unreadable_reason(raw)) is not None:
        if (earlier := decided(conn, fallback_request_id)) is not None:
            return earlier, []
        verdict = Verdict(
            request_id=fallback_request_id,
            accepted=False,
            org_id=None,
            reasons=[Problem("message", reason)],
            warnings=[],
        )
        return _record(conn, verdict, "malformed", {"unreadable": True}), []
    request, problems = check_request(raw, sqs_endpoint)
    # the request's own id, unless it breaks its rule: then it is no key to store a verdict under
    request_id = fallback_request_id
    if (
        isinstance(raw, dict)
        and "request_id" in raw
        and not any(p.field == "request_id" for p in problems)
    ):
        request_id = raw["request_id"]
    digest = request_digest(request_id, raw)
    if (earlier := decided(conn, request_id)) is not None:
        if same_request(conn, request_id, digest):
            return earlier, []
        return _reused(conn, request_id, digest), []
    if request is None:
        return reject_malformed(conn, request_id, raw, problems, digest), []
    kind = "update" if request.is_update else "register"

    def reject(*reasons: Problem, warnings: list[str] | None = None) -> tuple[Verdict, list[Event]]:
        verdict = Verdict(
            request_id=request_id,
            accepted=False,
            org_id=request.org_id,
            reasons=list(reasons),
            warnings=warnings or [],
        )
        return _record(conn, verdict, kind, redacted(request), digest), []

    existing = None
    if request.org_id is not None:
        existing = load_organization(conn, keyring, request.org_id)
        if existing is None:
            return reject(Problem("org_id", f"no organization {request.org_id} is registered"))
    if request.nickname is not None and (
        refused := nicknames.problem(conn, request.nickname, request.org_id)
    ):
        return reject(refused)

    live = LiveCheck()
    if request.credentials is not None:
        live = check_live(assume, request.credentials)
        if live.problems:
            return reject(*live.problems, warnings=live.warnings)
    org_id = request.org_id or live.aws_org_id
    assert org_id is not None
    if existing is None and load_organization(conn, keyring, org_id) is not None:
        return reject(
            Problem(
                "org_role_arn",
                f"organization {org_id} is already registered; use `orgsync update` to change it",
            )
        )
    if existing is not None and live.aws_org_id not in (None, existing.org_id):
        return reject(
            Problem(
                "org_role_arn",
                f"the role belongs to organization {live.aws_org_id}, not {existing.org_id}",
            )
        )

    credentials = request.credentials or (existing.credentials if existing else None)
    assert credentials is not None
    filters = request.filters(existing.filters if existing else None)
    if request.filter_changes.get("limit_ou_ids") and (
        out_of_org := scope_problem(assume, credentials, filters.limit_ou_ids)
    ):
        return reject(out_of_org, warnings=live.warnings)
    url = filters.events_queue_url
    changed_url = request.filter_changes.get("events_queue_url")
    if changed_url and url and (queue_problems := check_queue(assume, credentials, url)):
        return reject(*queue_problems, warnings=live.warnings)
    nickname = request.nickname or (existing.nickname if existing else None)
    assert nickname is not None
    nickname = nicknames.normalised(nickname)
    store_organization(conn, keyring, org_id, nickname, credentials, filters)
    verdict = Verdict(
        request_id=request_id, accepted=True, org_id=org_id, reasons=[], warnings=live.warnings
    )
    _record(conn, verdict, kind, redacted(request), digest)
    return verdict, [start_sync(conn, org_id, kind)]


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
        UPSERT_ORG,
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


UPSERT_ORG = """
INSERT INTO organizations (org_id, nickname, management_account_id, partition,
                           credentials_key_id, credentials, exclude_prefixes,
                           auto_remove_suspended, auto_badge, limit_ou_ids,
                           sync_interval_seconds, events_queue_url, aws_rates)
VALUES (%(org_id)s, %(nickname)s, %(management_account_id)s, %(partition)s, %(key_id)s,
        %(credentials)s, %(exclude_prefixes)s, %(auto_remove_suspended)s, %(auto_badge)s,
        %(limit_ou_ids)s, %(sync_interval_seconds)s, %(events_queue_url)s, %(aws_rates)s)
ON CONFLICT (org_id) DO UPDATE SET
    nickname = EXCLUDED.nickname, management_account_id = EXCLUDED.management_account_id,
    partition = EXCLUDED.partition, credentials_key_id = EXCLUDED.credentials_key_id,
    credentials = EXCLUDED.credentials, exclude_prefixes = EXCLUDED.exclude_prefixes,
    auto_remove_suspended = EXCLUDED.auto_remove_suspended, auto_badge = EXCLUDED.auto_badge,
    limit_ou_ids = EXCLUDED.limit_ou_ids, sync_interval_seconds = EXCLUDED.sync_interval_seconds,
    events_queue_url = EXCLUDED.events_queue_url, aws_rates = EXCLUDED.aws_rates,
    updated_at = now()
"""
