"""Validation (account-discovered → account-validated): assume the member role of each account.

`validate` takes a page of accounts: one read (references and which accounts still wait), the
AssumeRole calls concurrently, one transaction for the outcomes. The outcome is each account's
status. An account whose call failed transiently goes round again in a smaller page after a
jittered delay, with its own attempt count; permanent failures are the verdict, and so is a
transient error that outlasts `MAX_ATTEMPTS`. Failures are kept in PostgreSQL, where
`orgsync failed` lists them and `orgsync retry-failed` re-drives them (`redrive`), with a new
message id so each re-drive gets a fresh budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from orgsync.pipelines.account_state import AccountStatus, StageMark
from orgsync.pipelines.aws_errors import ErrorClass, again_after, backoff_seconds, classify
from orgsync.pipelines.events import LIVE, AccountsDiscovered, AccountsValidated, paged
from orgsync.pipelines.orgs import Organization, load_organization
from orgsync.pipelines.outbox import emit
from orgsync.pipelines.references import look_up
from orgsync.pipelines.sql import load
from orgsync.pipelines.stage import Conn, Deps, Outcome, StageResult, rejected

SQL = load("orgsync.pipelines")

# Attempts at one account's AssumeRole. Each already makes botocore's own HTTP attempts with
# jittered sleeps (services/adapters/aws.py), so three attempts, a few RETRY_BASE_SECONDS apart at
# most
# (full jitter, capped by aws_errors far under RabbitMQ's 30-minute consumer_timeout), ride out
# 15-50 s of throttling: with a third of all calls throttled, one account in 10^7 would give
# up. A longer storm of errors becomes "gave up after 3 attempts", kept in `failures`: the next
# sync or `retry-failed` validates the account again. Throttling is not a failure of the
# account: however long it lasts, the account goes round again (the rate budget, when on, has
# already waited for AWS inside the call).
MAX_ATTEMPTS = 3
RETRY_BASE_SECONDS = 2.0


class ValidationStatus(StrEnum):
    """Validation's outcome, which becomes the account's status."""

    OK = AccountStatus.OK.value
    ASSUME_ROLE_FAILED = AccountStatus.ASSUME_ROLE_FAILED.value


class TransientAwsError(RuntimeError):
    """AWS said 'not now' (throttling, 5xx, network): the same call may succeed later."""

    def __init__(self, error: ErrorClass) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


@dataclass(frozen=True)
class Validation:
    status: ValidationStatus
    code: str | None = None
    message: str | None = None
    gave_up_after: int | None = None  # attempts, when transient errors exhausted the budget

    @property
    def detail(self) -> str:
        """The failure's message as `orgsync failed` shows it, next to its code."""
        message = self.message or ""
        if self.gave_up_after is None:
            return message
        return f"gave up after {self.gave_up_after} attempts: {self.code}: {message}"

    @property
    def attempts(self) -> int:
        """The tries this verdict counts as failed: a page that went round again because AWS or
        the rate budget said "not yet" did not try the account."""
        return self.gave_up_after or 1

    @property
    def reason(self) -> str | None:
        if self.code is None:
            return None
        return self.detail if self.gave_up_after is not None else f"{self.code}: {self.message}"


def assume_member_role(sts: Any, org: Organization, account_id: str) -> Validation:
    creds = org.credentials
    params: dict[str, Any] = {
        "RoleArn": org.member_role_arn(account_id),
        "RoleSessionName": creds.member_session_name,
        "DurationSeconds": creds.member_session_duration,
    }
    if creds.external_id:
        params["ExternalId"] = creds.external_id
    try:
        sts.assume_role(**params)
    except Exception as error:
        verdict = classify(error)
        if verdict.transient:
            raise TransientAwsError(verdict) from error
        return Validation(ValidationStatus.ASSUME_ROLE_FAILED, verdict.code, verdict.message)
    return Validation(ValidationStatus.OK)


def gave_up(error: TransientAwsError, attempts: int) -> Validation:
    return Validation(
        ValidationStatus.ASSUME_ROLE_FAILED,
        error.error.code,
        error.error.message,
        gave_up_after=attempts,
    )


def retry_delay_ms(attempt: int) -> int:
    """How long to wait after failed attempt `attempt` (1 for the first delivery)."""
    return round(backoff_seconds(attempt - 1, base=RETRY_BASE_SECONDS) * 1000)


def try_member_role(sts: Any, org: Organization, account_id: str) -> Validation | ErrorClass:
    """The account's verdict, or the transient error that leaves it undecided."""
    try:
        return assume_member_role(sts, org, account_id)
    except TransientAwsError as error:
        return error.error


def validate(deps: Deps, event: AccountsDiscovered) -> StageResult:
    with deps.connect() as conn:
        found = look_up(conn, event, StageMark.DISCOVERED)
        org = load_organization(conn, deps.keyring, event.org_id) if found.due else None
    if found.problem:
        return rejected(found.problem)
    if org is None:
        return StageResult(Outcome.SKIPPED)
    due = list(found.due)
    answers = deps.concurrently(lambda account: try_member_role(deps.sts, org, account), due)
    verdicts: dict[str, Validation] = {}
    again: dict[str, ErrorClass] = {}
    for account_id, answer in zip(due, answers, strict=True):
        if isinstance(answer, Validation):
            verdicts[account_id] = answer
        elif event.attempt < MAX_ATTEMPTS or answer.throttling:
            again[account_id] = answer
        else:
            verdicts[account_id] = gave_up(TransientAwsError(answer), event.attempt)
    with deps.connect() as conn:
        ids = record(conn, event, verdicts)
        ids += retry_later(conn, event, again)
    deps.relay(ids)
    failed = [v for v in verdicts.values() if v.status is not ValidationStatus.OK]
    return StageResult(
        Outcome.DONE,
        counts={
            "accounts": len(event.account_ids),
            "ok": len(verdicts) - len(failed),
            "failed": len(failed),
            "again": len(again),
        },
        message_ids=ids,
        error_code=failed[0].code if failed else None,
    )


def retry_later(conn: Conn, event: AccountsDiscovered, again: dict[str, ErrorClass]) -> list[str]:
    """These accounts of the page try again, as a page of their own, after a jittered delay
    (or at their rate budget's next free slot, when it deferred them)."""
    if not again:
        return []
    delay = again_after(list(again.values()), retry_delay_ms(event.attempt) / 1000)
    return emit(conn, [event.retried(list(again))], delay_s=delay)


def record(conn: Conn, event: AccountsDiscovered, verdicts: dict[str, Validation]) -> list[str]:
    """Store the outcomes once: an account a duplicate delivery already moved on is left alone.
    Returns the message id of the page of stored accounts that goes on to harvesting."""
    if not verdicts:
        return []
    ids = sorted(verdicts)
    stored = {
        row["account_id"]
        for row in conn.execute(
            SQL["record_validations"],
            (
                ids,
                [verdicts[a].status.value for a in ids],
                [verdicts[a].reason for a in ids],
                event.sync_id,
            ),
        )
    }
    ok = [a for a in ids if a in stored and verdicts[a].status is ValidationStatus.OK]
    failed = [a for a in ids if a in stored and a not in ok]
    if ok:
        conn.execute(SQL["forget_failures"], (ok,))
    if failed:
        conn.execute(
            SQL["record_validation_failures"],
            (
                event.org_id,
                failed,
                [verdicts[a].code for a in failed],
                [verdicts[a].detail for a in failed],
                [verdicts[a].attempts for a in failed],
            ),
        )
    if not stored:
        return []
    validated = AccountsValidated(
        org_id=event.org_id,
        sync_id=event.sync_id,
        account_ids=tuple(a for a in ids if a in stored),
        redrive=event.redrive,
        lane=event.lane,
    )
    return emit(conn, [validated])


def redrive(
    conn: Conn, token: str, org_id: str | None, account_id: str | None, code: str | None
) -> list[AccountsDiscovered]:
    """Send failed accounts back to validation, a page per organization and sync; `token`
    makes their message ids new."""
    rows = conn.execute(
        SQL["redrive_failed_validations"], {"org": org_id, "acct": account_id, "code": code}
    ).fetchall()
    by_sync: dict[tuple[str, str], list[str]] = {}
    for r in sorted(rows, key=lambda r: r["account_id"]):
        by_sync.setdefault((r["org_id"], r["sync_id"]), []).append(r["account_id"])
    return [
        AccountsDiscovered(org_id=org, sync_id=sync, account_ids=page, redrive=token, lane=LIVE)
        for (org, sync), ids in sorted(by_sync.items())
        for page in paged(ids)
    ]


def redrive_dead_letter(
    conn: Conn, dead: AccountsDiscovered, token: str
) -> AccountsDiscovered | None:
    """A dead-lettered validation again, for those of its accounts that still wait for it;
    None when none does."""
    due = [
        r["account_id"]
        for r in conn.execute(
            SQL["accounts_awaiting_validation"], (list(dead.account_ids), dead.sync_id)
        )
    ]
    if not due:
        return None
    return AccountsDiscovered(
        org_id=dead.org_id, sync_id=dead.sync_id, account_ids=tuple(due), redrive=token, lane=LIVE
    )
