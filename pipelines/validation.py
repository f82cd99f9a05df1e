"""Validation (account-discovered → account-validated): assume the member role.

The outcome is the account's status. Transient AWS errors are raised for the actor to retry;
permanent ones are the verdict, and so is a transient error that outlasts the retry budget.
Failures are kept in PostgreSQL, where `orgsync failed` lists them and `orgsync retry-failed`
re-drives them (`redrive`), with a new message id so each re-drive gets a fresh retry budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import psycopg

from pipelines.aws_errors import ErrorClass, backoff_seconds, classify
from pipelines.events import AccountDiscovered, AccountValidated, Event
from pipelines.orgs import Organization

Conn = psycopg.Connection[dict[str, Any]]

# Deliveries of one validation message. Each already makes botocore's own 5 HTTP attempts with
# up to 15 s of jittered sleeps (services/aws.py), so three deliveries, a few RETRY_BASE_SECONDS
# apart at most (full jitter, capped by aws_errors far under RabbitMQ's 30-minute
# consumer_timeout), ride out 15-50 s of throttling: with a third of all calls throttled, one
# account in 10^7 would give up. A longer storm becomes "gave up after 3 attempts", kept in
# `failures`: the next sync or `retry-failed` validates the account again.
MAX_ATTEMPTS = 3
RETRY_BASE_SECONDS = 2.0


class ValidationStatus(StrEnum):
    OK = "ok"
    ASSUME_ROLE_FAILED = "assume_role_failed"


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


def is_due(conn: Conn, event: AccountDiscovered) -> bool:
    """False when a newer sync took the account over or this sync already validated it."""
    return (
        conn.execute(
            "SELECT 1 FROM accounts"
            " WHERE account_id = %s AND sync_id = %s AND stage = 'discovered'",
            (event.account_id, event.sync_id),
        ).fetchone()
        is not None
    )


RECORD = """
UPDATE accounts SET status = %s, status_reason = %s, stage = 'validated', stage_at = now(),
                    updated_at = now()
WHERE account_id = %s AND sync_id = %s AND stage = 'discovered'
RETURNING account_id
"""

RECORD_FAILURE = """
INSERT INTO failures (account_id, org_id, stage, code, message, attempts)
VALUES (%s, %s, 'validation', %s, %s, %s)
ON CONFLICT (account_id) DO UPDATE SET
    code = EXCLUDED.code, message = EXCLUDED.message, stage = EXCLUDED.stage,
    attempts = failures.attempts + EXCLUDED.attempts, last_failed_at = now()
"""


def record(
    conn: Conn, event: AccountDiscovered, validation: Validation, attempts: int
) -> list[Event]:
    """Store the outcome once; a duplicate delivery finds the stage moved on and emits nothing."""
    stored = conn.execute(
        RECORD, (validation.status, validation.reason, event.account_id, event.sync_id)
    ).fetchone()
    if stored is None:
        return []
    if validation.status is ValidationStatus.OK:
        conn.execute("DELETE FROM failures WHERE account_id = %s", (event.account_id,))
    else:
        conn.execute(
            RECORD_FAILURE,
            (event.account_id, event.org_id, validation.code, validation.detail, attempts),
        )
    return [
        AccountValidated(
            org_id=event.org_id,
            sync_id=event.sync_id,
            account_id=event.account_id,
            status=validation.status.value,
        )
    ]


# An account still 'discovered' has a validation message on its way (or dead-lettered, which
# `redrive_dead_letter` handles): a second message would only duplicate the AssumeRole call.
REDRIVE = """
UPDATE accounts a SET stage = 'discovered', stage_at = now(), updated_at = now()
FROM failures f
WHERE f.account_id = a.account_id AND a.status = 'assume_role_failed'
  AND a.sync_id IS NOT NULL AND a.stage IS DISTINCT FROM 'discovered'
  AND (%(org)s::text IS NULL OR a.org_id = %(org)s)
  AND (%(acct)s::text IS NULL OR a.account_id = %(acct)s)
  AND (%(code)s::text IS NULL OR f.code = %(code)s)
RETURNING a.account_id, a.org_id, a.sync_id::text AS sync_id
"""


def redrive(
    conn: Conn, attempt: str, org_id: str | None, account_id: str | None, code: str | None
) -> list[AccountDiscovered]:
    """Send failed accounts back to validation; `attempt` makes their message ids new."""
    rows = conn.execute(REDRIVE, {"org": org_id, "acct": account_id, "code": code}).fetchall()
    return [
        AccountDiscovered(
            org_id=r["org_id"], sync_id=r["sync_id"], account_id=r["account_id"], attempt=attempt
        )
        for r in sorted(rows, key=lambda r: r["account_id"])
    ]


def redrive_dead_letter(
    conn: Conn, dead: AccountDiscovered, attempt: str
) -> AccountDiscovered | None:
    """A dead-lettered validation again, if its account still waits for it; None when stale."""
    if not is_due(conn, dead):
        return None
    return AccountDiscovered(
        org_id=dead.org_id, sync_id=dead.sync_id, account_id=dead.account_id, attempt=attempt
    )
