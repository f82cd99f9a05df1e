"""Sealed credentials in the test's database, and the settings that read keys from a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from orgsync.pipelines.credentials import Keyring, seal_json
from orgsync.pipelines.orgs import seal_credentials
from orgsync.pipelines.request_rules import Credentials
from orgsync.services.settings import Settings

Conn = psycopg.Connection[dict[str, Any]]
ORGS = ("o-keysorg0001", "o-keysorg0002")
STANDALONE = "444444444444"


def creds(name: str) -> Credentials:
    return Credentials(
        org_role_arn=f"arn:aws:iam::123456789012:role/{name}",
        org_session_name="s1",
        org_session_duration=900,
        member_role_name="M",
        member_session_name="s2",
        member_session_duration=900,
        external_id=f"ext-{name}",
    )


def file_settings(database_url: str, key_file: Path) -> Settings:
    return Settings(database_url=database_url, encryption_key_file=key_file)


def seed(conn: Conn, keyring: Keyring) -> None:
    """Two organizations and a standalone account, sealed under the keyring's active key."""
    for number, org_id in enumerate(ORGS):
        sealed = seal_credentials(keyring, org_id, creds(f"Role{number}"))
        conn.execute(
            "INSERT INTO organizations (org_id, nickname, management_account_id, partition,"
            " credentials_key_id, credentials) VALUES (%s, %s, '123456789012', 'aws', %s, %s)",
            (org_id, f"n{number}", sealed.key_id, sealed.blob),
        )
    sealed = seal_json(
        keyring, {"role_arn": "arn:aws:iam::444444444444:role/S"}, "account:444444444444"
    )
    conn.execute(
        "INSERT INTO accounts (account_id, name, managed_by_org, credentials_key_id, credentials)"
        " VALUES (%s, 'standalone', false, %s, %s)",
        (STANDALONE, sealed.key_id, sealed.blob),
    )
