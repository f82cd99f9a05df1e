"""Issue 18, finding 7: what logs and stored AWS error texts must not hold."""

from __future__ import annotations

import json
import logging

import dramatiq
import pytest
from botocore.exceptions import ClientError
from dramatiq.brokers.stub import StubBroker

from orgsync.pipelines.aws_errors import classify
from orgsync.pipelines.redaction import scrub_text
from orgsync.services import logs
from tests.support.waiting import wait_until

REQUEST = {
    "request_id": "r-1",
    "nickname": "n",
    "org_role_arn": "arn:aws:iam::123456789012:role/ops,x/SecretRoleName",
    "org_session_name": "SecretOrgSession",
    "member_role_name": "SecretMemberRole",
    "member_session_name": "SecretMemberSession",
    "external_id": "SecretExternalId",
}
SECRETS = (
    "SecretRoleName",
    "SecretOrgSession",
    "SecretMemberRole",
    "SecretMemberSession",
    "SecretExternalId",
    "ops,x",
)


def test_dramatiqs_failure_line_names_the_message_not_its_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logging.disable(logging.NOTSET)  # `orgsync iam-policy` in an earlier test turns logs off
    logs.configure("INFO", "json")
    broker = StubBroker()
    broker.emit_after("process_boot")

    @dramatiq.actor(broker=broker, actor_name="register_organization", max_retries=0)
    def register_organization(request: dict[str, str]) -> None:
        raise ValueError("boom")

    message = register_organization.send(REQUEST)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    err = ""
    try:  # dramatiq's own line, from its worker thread

        def failed() -> bool:
            nonlocal err
            err += capsys.readouterr().err
            return "Failed to process" in err

        wait_until(failed, 30, "dramatiq's failure line")
    finally:
        worker.stop()
    assert "Failed to process" in err, err
    line = next(json.loads(x) for x in err.splitlines() if "Failed to process" in x)
    assert line["event"] == (
        f"Failed to process message register_organization(message_id={message.message_id})"
        " with unhandled exception."
    )
    for secret in SECRETS:
        assert secret not in err


@pytest.mark.parametrize(
    "text",
    [
        "role arn:aws:iam::123456789012:role/ops,x/SecretRoleName was denied",
        "arn:aws:iam::123456789012:role/a'b)c/SecretRoleName",
        "User: arn:aws-us-gov:sts::123456789012:assumed-role/SecretRoleName/SecretOrgSession is x",
        "123456789012:role/SecretRoleName and 123456789012/assumed-role/SecretRoleName",
        "{'external_id': 'SecretExternalId', 'member_role_name': 'SecretMemberRole'}",
    ],
)
def test_whole_arns_and_account_qualified_roles_are_redacted_whatever_their_characters(
    text: str,
) -> None:
    scrubbed = scrub_text(text)
    assert "[redacted]" in scrubbed
    for secret in SECRETS:
        assert secret not in scrubbed


def test_an_aws_denial_is_scrubbed_before_it_can_be_stored() -> None:
    denial = ClientError(
        {
            "Error": {
                "Code": "AccessDenied",
                "Message": "User: arn:aws:sts::111122223333:assumed-role/SecretRoleName/"
                "SecretOrgSession is not authorized to perform: sts:AssumeRole on resource:"
                " arn:aws:iam::222233334444:role/ops,x/SecretMemberRole",
            }
        },
        "AssumeRole",
    )
    verdict = classify(denial)  # what failures.message, status_reason and syncs.error store
    assert verdict.code == "AccessDenied"
    assert "not authorized to perform: sts:AssumeRole" in verdict.message
    assert "arn:aws:iam::222233334444:role/[redacted]" in verdict.message
    for secret in SECRETS:
        assert secret not in verdict.message
