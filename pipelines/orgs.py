"""Organizations as the stages see them: filters in the clear, credentials opened on demand."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from orgsync.pipelines.credentials import Keyring, Sealed, open_json, seal_json
from orgsync.pipelines.request_rules import Credentials, Filters
from orgsync.pipelines.sql import load

SQL = load("orgsync.pipelines")


@dataclass(frozen=True, kw_only=True)
class Organization:
    org_id: str
    nickname: str
    partition: str
    management_account_id: str
    filters: Filters
    credentials: Credentials

    def member_role_arn(self, account_id: str) -> str:
        name = self.credentials.member_role_name.strip("/")
        return f"arn:{self.partition}:iam::{account_id}:role/{name}"


def bound_to(org_id: str) -> str:
    return f"organization:{org_id}"


def seal_credentials(keyring: Keyring, org_id: str, credentials: Credentials) -> Sealed:
    return seal_json(keyring, asdict(credentials), bound_to(org_id))


def load_organization(
    conn: psycopg.Connection[dict[str, Any]], keyring: Keyring, org_id: str
) -> Organization | None:
    row = conn.execute(SQL["load_organization"], (org_id,)).fetchone()
    if row is None:
        return None
    sealed = Sealed(key_id=row["credentials_key_id"], blob=bytes(row["credentials"]))
    return Organization(
        org_id=row["org_id"],
        nickname=row["nickname"],
        partition=row["partition"],
        management_account_id=row["management_account_id"],
        filters=Filters(
            exclude_prefixes=tuple(row["exclude_prefixes"]),
            auto_remove_suspended=row["auto_remove_suspended"],
            auto_badge=row["auto_badge"],
            limit_ou_ids=tuple(row["limit_ou_ids"]),
            sync_interval_seconds=row["sync_interval_seconds"],
            events_queue_url=row["events_queue_url"],
            aws_rates=row["aws_rates"],
        ),
        credentials=Credentials(**open_json(keyring, sealed, bound_to(org_id))),
    )


def resolve_org_id(conn: psycopg.Connection[dict[str, Any]], ref: str) -> str | None:
    """The id of the organization named by its id or its nickname."""
    row = conn.execute(SQL["resolve_org_id"], (ref, ref, ref)).fetchone()
    return None if row is None else str(row["org_id"])
