"""moto's organization registered in the test's database, synced once by the stage functions,
and driven by change events: the world of the feed's and the incremental sync's tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws

from orgsync.pipelines import badges, discovery, feed, harvest, validation
from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.events import (
    AccountsDiscovered,
    AccountsValidated,
    OrgRegistered,
    TagsHarvested,
)
from orgsync.pipelines.orgs import Organization, load_organization, seal_credentials
from orgsync.pipelines.request_rules import Credentials
from tests.support.stages import stage_deps

DATA = Path(__file__).resolve().parents[1] / "data" / "organizations_events"
MGMT = "123456789012"  # moto's default account: the management account
CREDS = Credentials(
    org_role_arn=f"arn:aws:iam::{MGMT}:role/OrgReader",
    org_session_name="orgsync",
    org_session_duration=900,
    member_role_name="OrganizationAccountAccessRole",
    member_session_name="orgsync",
    member_session_duration=900,
)
Conn = psycopg.Connection[dict[str, Any]]


class World:
    """moto's organization (root / Eng / Prod, accounts `prod` and `top`), its queue, and the
    organization registered in the test's database and synced once."""

    def __init__(self, conn: Conn, keyring: Keyring) -> None:
        self.conn, self.keyring = conn, keyring
        self.orgs = boto3.client("organizations", region_name="us-east-1")
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        self.org_id = self.orgs.create_organization(FeatureSet="ALL")["Organization"]["Id"]
        self.root = self.orgs.list_roots()["Roots"][0]["Id"]
        self.eng = self.ou(self.root, "Eng")
        self.prod_ou = self.ou(self.eng, "Prod")
        self.prod = self.account("prod", self.prod_ou, {"team": "a"})
        self.top = self.account("top", self.root, {"team": "t"})
        self.url = self.sqs.create_queue(QueueName="orgsync-events")["QueueUrl"]
        sealed = seal_credentials(keyring, self.org_id, CREDS)
        conn.execute(
            "INSERT INTO organizations (org_id, nickname, management_account_id, partition,"
            " credentials_key_id, credentials, auto_badge, events_queue_url)"
            " VALUES (%s, 'feed', %s, 'aws', %s, %s, true, %s)",
            (self.org_id, MGMT, sealed.key_id, sealed.blob, self.url),
        )
        conn.commit()
        self.calls: list[str] = []  # the Organizations and STS calls the stages make
        self.sts = boto3.client("sts", region_name="us-east-1")
        self.sts.meta.events.register(
            "before-call.sts.*", lambda model, **_: self.calls.append(model.name)
        )
        self.deps = stage_deps(
            conn,
            keyring,
            organizations=lambda org: self.orgs,
            sts=self.sts,
            sleep=lambda seconds: None,
        )
        self.orgs.meta.events.register(
            "before-call.organizations.*", lambda model, **_: self.calls.append(model.name)
        )
        self.sync()

    def ou(self, parent: str, name: str) -> str:
        ou = self.orgs.create_organizational_unit(ParentId=parent, Name=name)
        return str(ou["OrganizationalUnit"]["Id"])

    def account(self, name: str, parent: str, tags: dict[str, str]) -> str:
        created = self.orgs.create_account(
            AccountName=name,
            Email=f"{name}@example.com",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
        account_id = str(created["CreateAccountStatus"]["AccountId"])
        if parent != self.root:
            self.orgs.move_account(
                AccountId=account_id, SourceParentId=self.root, DestinationParentId=parent
            )
        return account_id

    @property
    def org(self) -> Organization:
        org = load_organization(self.conn, self.keyring, self.org_id)
        assert org is not None
        return org

    def sync(self, mode: str = "full") -> str:
        """A sync of `mode` run to its end by the stage functions; its id."""
        sync_id = str(uuid.uuid4())
        self.conn.execute(
            "INSERT INTO syncs (sync_id, org_id, trigger, mode) VALUES (%s, %s, 'test', %s)",
            (sync_id, self.org_id, mode),
        )
        self.conn.commit()
        discovery.discover(self.deps, OrgRegistered(org_id=self.org_id, sync_id=sync_id))
        self.drain()
        return sync_id

    def drain(self) -> int:
        """Run the stages on the outbox's events until it is empty; returns how many ran."""
        stages: dict[str, Any] = {
            AccountsDiscovered.queue: (AccountsDiscovered, validation.validate),
            AccountsValidated.queue: (AccountsValidated, harvest.harvest),
            TagsHarvested.queue: (TagsHarvested, badges.reconcile),
        }
        ran = 0
        while True:
            row = self.conn.execute(
                "DELETE FROM outbox WHERE id = (SELECT min(id) FROM outbox)"
                " RETURNING queue_name, payload"
            ).fetchone()
            self.conn.commit()
            if row is None:
                return ran
            kind, stage = stages[row["queue_name"]]
            stage(self.deps, kind.from_payload(row["payload"]))
            ran += 1

    def event(self, name: str, **detail: Any) -> str:
        """The recorded body of `name`, about this organization's accounts, happening now."""
        text = (DATA / f"{name}.json").read_text()
        for old, new in (
            ("111111111111", MGMT),
            ("222222222222", self.prod),
            ("o-exampleorgid", self.org_id),
            ("ou-exam-ple22222", self.prod_ou),
        ):
            text = text.replace(old, new)
        doc = json.loads(text)
        doc["detail"]["eventID"] = str(uuid.uuid4())
        doc["detail"]["eventTime"] = datetime.now(UTC).isoformat()
        doc["detail"].update(detail)
        return json.dumps(doc)

    def handle(self, body: str) -> feed.Handled:
        return feed.handle(self.deps, self.org, str(uuid.uuid4()), body)

    def account_row(self, account_id: str) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT status, status_reason, org_path, tags FROM accounts WHERE account_id = %s",
            (account_id,),
        ).fetchone()
        assert row is not None
        self.conn.commit()
        return row

    def badge(self, account_id: str, key: str) -> str | None:
        row = self.conn.execute(
            "SELECT value FROM badges WHERE account_id = %s AND key = %s", (account_id, key)
        ).fetchone()
        self.conn.commit()
        return None if row is None else str(row["value"])

    def outcomes(self) -> list[tuple[str, str]]:
        rows = self.conn.execute(
            "SELECT event_name, outcome FROM change_events ORDER BY handled_at"
        ).fetchall()
        self.conn.commit()
        return [(r["event_name"], r["outcome"]) for r in rows]


@pytest.fixture
def world(conn: Conn, keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield World(conn, keyring)
