"""Validation (account-discovered → account-validated): assume the member role.

The outcome is the account's status. Transient AWS errors are raised for the actor to retry;
permanent ones are the verdict. Failures are kept in PostgreSQL, where `orgsync failed` lists
them and `orgsync retry-failed` re-drives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import psycopg

from pipelines.aws_errors import ErrorClass, classify
from pipelines.events import AccountDiscovered, AccountValidated, Event
from pipelines.orgs import Organization


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

    @property
    def reason(self) -> str | None:
        return None if self.code is None else f"{self.code}: {self.message}"


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
        f"gave up after {attempts} attempts: {error.error.code}: {error.error.message}",
    )


def is_due(conn: psycopg.Connection[dict[str, Any]], event: AccountDiscovered) -> bool:
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
    conn: psycopg.Connection[dict[str, Any]],
    event: AccountDiscovered,
    validation: Validation,
    attempts: int,
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
            (event.account_id, event.org_id, validation.code, validation.message, attempts),
        )
    return [
        AccountValidated(
            org_id=event.org_id,
            sync_id=event.sync_id,
            account_id=event.account_id,
            status=validation.status.value,
        )
    ]
