"""`events_queue_url` at registration: formatted like an SQS queue URL (or one under
AWS_ENDPOINT_URL), checked live with the organization role (receive and delete), stored,
cleared with null, and shown by `orgsync orgs`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from orgsync.pipelines import registration
from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.orgs import load_organization
from orgsync.pipelines.registration import RegistrationMessage
from orgsync.pipelines.request_rules import Credentials
from orgsync.pipelines.verdicts import Verdict, decided
from orgsync.services.adapters.aws import AssumedRole, Aws
from orgsync.services.read_models import inventory
from tests.support.stages import stage_deps

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[dict[str, Any]]
ROLE = "arn:aws:iam::123456789012:role/OrgReader"
CREDENTIALS = {
    "org_role_arn": ROLE,
    "org_session_name": "orgsync",
    "org_session_duration": 3600,
    "member_role_name": "OrgSyncMember",
    "member_session_name": "orgsync-member",
    "member_session_duration": 900,
}


class Aws_:
    """moto's AWS through the product's own Aws, the queue's delete denied on demand."""

    def __init__(self) -> None:
        self.aws = Aws()
        self.deny_delete = False

    def __call__(self, creds: Credentials, use_external_id: bool) -> AssumedRole:
        role = self.aws.assume(creds, use_external_id)
        role.session.events.register("before-call.sqs.DeleteMessage", self._delete)
        return role

    def _delete(self, **_: Any) -> None:
        if self.deny_delete:
            error = {"Error": {"Code": "AccessDenied", "Message": f"{ROLE} may not"}}
            raise ClientError(error, "DeleteMessage")  # type: ignore[arg-type]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Aws_, str]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        boto3.client("organizations").create_organization(FeatureSet="ALL")
        url = boto3.client("sqs").create_queue(QueueName="orgsync-events")["QueueUrl"]
        yield Aws_(), url


def decide(conn: Conn, keyring: Keyring, assume: Aws_, raw: dict[str, Any], **kw: Any) -> Verdict:
    deps = stage_deps(conn, keyring, assume_org_role=assume, **kw)
    result = registration.register(deps, RegistrationMessage("fallback", raw))
    verdict = decided(conn, result.counts["request_id"])
    assert verdict is not None
    return verdict


def reasons(verdict: Verdict) -> str:
    return " | ".join(f"{p.field}: {p.message}" for p in verdict.reasons)


def test_a_queue_the_role_can_read_is_stored_and_shown(
    conn: Conn, keyring: Keyring, aws: tuple[Aws_, str]
) -> None:
    assume, url = aws
    raw = {"request_id": "r1", "nickname": "feed", **CREDENTIALS, "events_queue_url": url}
    verdict = decide(conn, keyring, assume, raw)
    assert verdict.accepted, reasons(verdict)
    assert verdict.org_id is not None
    org = load_organization(conn, keyring, verdict.org_id)
    assert org is not None and org.filters.events_queue_url == url
    (shown,) = inventory.organizations(conn)
    assert shown["filters"]["events_queue_url"] == url
    assert shown["feed"]["queue"] == url and shown["feed"]["handled"] is None  # not polled yet
    # cleared with null, without a check
    verdict = decide(
        conn, keyring, assume, {"request_id": "r2", "org_id": org.org_id, "events_queue_url": None}
    )
    assert verdict.accepted, reasons(verdict)
    (shown,) = inventory.organizations(conn)
    assert shown["feed"] is None and shown["filters"]["events_queue_url"] is None


def test_a_queue_that_does_not_exist_or_denies_delete_is_rejected_with_the_reason(
    conn: Conn, keyring: Keyring, aws: tuple[Aws_, str]
) -> None:
    assume, url = aws
    verdict = decide(conn, keyring, assume, {"request_id": "r1", "nickname": "f", **CREDENTIALS})
    assert verdict.org_id is not None
    gone = url.replace("orgsync-events", "no-such-queue")
    update = {"request_id": "r2", "org_id": verdict.org_id, "events_queue_url": gone}
    rejected = decide(conn, keyring, assume, update)
    assert not rejected.accepted
    assert "events_queue_url: the organization role cannot receive" in reasons(rejected)
    assert "NonExistentQueue" in reasons(rejected)
    assume.deny_delete = True
    update = {"request_id": "r3", "org_id": verdict.org_id, "events_queue_url": url}
    rejected = decide(conn, keyring, assume, update)
    assert "cannot delete on the queue: AccessDenied" in reasons(rejected)
    assert ROLE not in reasons(rejected)  # credentials never in a verdict
    org = load_organization(conn, keyring, verdict.org_id)
    assert org is not None and org.filters.events_queue_url is None  # nothing written


def test_a_url_under_the_simulated_endpoint_is_accepted_only_where_it_is_set(
    conn: Conn, keyring: Keyring, aws: tuple[Aws_, str]
) -> None:
    assume, _ = aws
    url = "http://127.0.0.1:5000/123456789012/orgsync-events"
    raw = {"request_id": "r1", "nickname": "f", **CREDENTIALS, "events_queue_url": url}
    rejected = decide(conn, keyring, assume, raw)
    assert "is not an SQS queue URL" in reasons(rejected)
    raw = {**raw, "request_id": "r2"}
    verdict = decide(conn, keyring, assume, raw, sqs_endpoint="http://127.0.0.1:5000")
    # the format passes; moto in-process has no server there, so the live check names the queue
    assert "not an SQS queue URL" not in reasons(verdict)
