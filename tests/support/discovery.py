"""A moto organization built path by path, and the organization and accounts in PostgreSQL
as discovery leaves them."""

from __future__ import annotations

from typing import Any

import boto3
import psycopg
from botocore.config import Config
from moto.organizations.models import organizations_backends

from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.registration import store_organization
from orgsync.pipelines.request_rules import Credentials, Filters
from orgsync.services.adapters.aws import CLIENT_CONFIG
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import MANAGEMENT_ACCOUNT_ID, aws_client

Conn = psycopg.Connection[dict[str, Any]]
DEEP = "Root/Engineering/Prod/Apps/Core"  # four OU levels under the root


class AwsOrg:
    """An organization in moto, built path by path: `ou("Root/A/B")`, `account("x", "Root/A")`."""

    def __init__(self, endpoint_url: str) -> None:
        self.api = aws_client(endpoint_url, "organizations")
        self.org_id = self.api.create_organization(FeatureSet="ALL")["Organization"]["Id"]
        self.root_id = self.api.list_roots()["Roots"][0]["Id"]
        self.ids = {"Root": self.root_id}

    def ou(self, path: str) -> str:
        if path not in self.ids:
            parent, _, name = path.rpartition("/")
            made = self.api.create_organizational_unit(ParentId=self.ou(parent), Name=name)
            self.ids[path] = made["OrganizationalUnit"]["Id"]
        return self.ids[path]

    def account(self, name: str, path: str = "Root") -> str:
        status = self.api.create_account(AccountName=name, Email=f"{name}@example.com")
        account_id = str(status["CreateAccountStatus"]["AccountId"])
        self.move(account_id, path, source="Root")
        return account_id

    def move(self, account_id: str, path: str, source: str | None = None) -> None:
        if path == source:
            return
        if source is None:
            source_id = self.api.list_parents(ChildId=account_id)["Parents"][0]["Id"]
        else:
            source_id = self.ou(source)
        self.api.move_account(
            AccountId=account_id, SourceParentId=source_id, DestinationParentId=self.ou(path)
        )

    def set_state(self, account_id: str, state: str | None, status: str | None = None) -> None:
        """What AWS reports for the account; moto itself only knows ACTIVE and SUSPENDED."""
        backend = organizations_backends[MANAGEMENT_ACCOUNT_ID]["aws"]
        account = backend.get_account_by_id(account_id)
        account.state, account.status = state, status or state

    def remove(self, account_id: str) -> None:
        self.api.remove_account_from_organization(AccountId=account_id)


def organizations_client(aws: SimulatedAws, config: Config = CLIENT_CONFIG) -> Any:
    """An Organizations client configured as the service's own (`services.aws.CLIENT_CONFIG`)."""
    return boto3.client(
        "organizations",
        endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def register(conn: Conn, keyring: Keyring, org: AwsOrg, **filters: Any) -> None:
    """Insert or update the organization's row, as an accepted registration would."""
    credentials = Credentials(
        org_role_arn=f"arn:aws:iam::{MANAGEMENT_ACCOUNT_ID}:role/OrgSyncReadOnly",
        org_session_name="orgsync-test",
        org_session_duration=3600,
        member_role_name="OrgSyncMember",
        member_session_name="orgsync-test-member",
        member_session_duration=900,
    )
    store_organization(
        conn,
        keyring,
        org.org_id,
        "acme",
        credentials,
        Filters(
            exclude_prefixes=tuple(filters.get("exclude_prefixes", [])),
            auto_remove_suspended=filters.get("auto_remove_suspended", False),
            limit_ou_ids=tuple(filters.get("limit_ou_ids", [])),
        ),
    )
    conn.commit()


def accounts(conn: Conn) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        "SELECT account_id, org_id, name, org_path, status, status_reason, managed_by_org,"
        " credentials, aws_state FROM accounts"
    ).fetchall()
    return {r["account_id"]: r for r in rows}


def live(conn: Conn) -> set[str]:
    return {a for a, row in accounts(conn).items() if row["status"] != "removed"}
