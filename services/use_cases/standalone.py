"""Standalone accounts: one account reached through its own role, outside any organization.

`orgsync account add / set-credentials / delete`. The role's configuration is sealed like an
organization's, bound to the account's row. Once an organization's discovery finds the account
it takes it over (`upsert_accounts` in pipelines/queries.sql drops these credentials and sets
`managed_by_org`); from then on the account can be neither edited nor deleted on its own.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from orgsync.pipelines import audit
from orgsync.pipelines.audit import By
from orgsync.pipelines.credentials import Keyring, seal_json

# The registration request's own field rules, so both kinds of role are checked alike.
from orgsync.pipelines.request_rules import field_problems
from orgsync.pipelines.sql import load
from orgsync.services.errors import UserError

SQL = load("orgsync.services.use_cases")

Conn = psycopg.Connection[dict[str, Any]]
_ACCOUNT_ID = re.compile(r"[0-9]{12}")


@dataclass(frozen=True, kw_only=True, repr=False)
class AccountCredentials:
    role_arn: str
    session_name: str = "orgsync"
    session_duration: int = 3600
    external_id: str | None = None

    def __repr__(self) -> str:
        return "AccountCredentials(<redacted>)"


def bound_to(account_id: str) -> str:
    return f"account:{account_id}"


def problems(account_id: str, creds: AccountCredentials) -> list[str]:
    """Every formatting problem at once, each naming its flag."""
    found = [] if _ACCOUNT_ID.fullmatch(account_id) else ["ACCOUNT_ID must be 12 digits"]
    found += [f"--role-arn {p}" for p in field_problems("org_role_arn", creds.role_arn)]
    if not found and creds.role_arn.split(":")[4] != account_id:
        found.append(f"--role-arn must name a role in account {account_id} itself")
    found += [f"--session-name {p}" for p in field_problems("org_session_name", creds.session_name)]
    duration = field_problems("org_session_duration", creds.session_duration)
    found += [f"--session-duration {p}" for p in duration]
    if creds.external_id is not None:
        external_id = field_problems("external_id", creds.external_id)
        found += [f"--external-id {p}" for p in external_id]
    return found


def add(
    conn: Conn,
    keyring: Keyring,
    account_id: str,
    creds: AccountCredentials,
    name: str | None,
    by: By | None = None,
) -> None:
    check(account_id, creds)
    sealed = seal_json(keyring, asdict(creds), bound_to(account_id))
    with conn.transaction():
        inserted = conn.execute(
            SQL["add_standalone_account"],
            (account_id, name or account_id, sealed.key_id, sealed.blob),
        ).fetchone()
        if inserted is None:
            refuse_if_managed(conn, account_id)
            raise UserError(
                f"account {account_id} is registered already; "
                "`orgsync account set-credentials` changes its role"
            )
        if by is not None:
            added = {"name": name or account_id, "credentials": audit.SECRET}
            by.record(conn, "account.add", None, added, subject=account_id)


def set_credentials(
    conn: Conn, keyring: Keyring, account_id: str, creds: AccountCredentials, by: By | None = None
) -> None:
    check(account_id, creds)
    sealed = seal_json(keyring, asdict(creds), bound_to(account_id))
    with conn.transaction():
        refuse_if_managed(conn, account_id)
        conn.execute(
            SQL["set_standalone_credentials"],
            (sealed.key_id, sealed.blob, account_id),
        )
        if by is not None:
            replaced = {"credentials": audit.SECRET}
            by.record(conn, "account.set-credentials", None, replaced, subject=account_id)


def delete(conn: Conn, account_id: str, by: By | None = None) -> None:
    with conn.transaction():
        refuse_if_managed(conn, account_id)
        deleted = conn.execute(SQL["delete_standalone_account"], (account_id,)).rowcount
        if by is not None and deleted:
            by.record(conn, "account.delete", None, {}, subject=account_id)


def check(account_id: str, creds: AccountCredentials) -> None:
    if found := problems(account_id, creds):
        raise UserError("; ".join(found))


def refuse_if_managed(conn: Conn, account_id: str) -> None:
    """Raise unless the account exists and no registered organization manages it; the row
    stays locked until the transaction ends, so discovery cannot adopt it halfway through."""
    row = conn.execute(SQL["lock_account_and_its_organization"], (account_id,)).fetchone()
    if row is None:
        raise UserError(f"no account {account_id} (see `orgsync accounts`)")
    if row["org_id"] is not None:
        raise UserError(
            f"account {account_id} is managed by organization {row['org_id']}"
            f" ({row['nickname']}); its credentials come from the organization and it cannot"
            " be edited or deleted on its own"
        )
