"""Member validation's pure pieces, with a fake STS client standing in for boto3."""

from __future__ import annotations

import random
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from orgsync.pipelines import validation
from orgsync.pipelines.aws_errors import MAX_BACKOFF_SECONDS
from orgsync.pipelines.orgs import Organization
from orgsync.pipelines.request_rules import Credentials, Filters
from orgsync.pipelines.validation import TransientAwsError, Validation, ValidationStatus

ACCOUNT = "210987654321"
ORG = Organization(
    org_id="o-abc123",
    nickname="unit",
    partition="aws-us-gov",
    management_account_id="123456789012",
    filters=Filters(),
    credentials=Credentials(
        org_role_arn="arn:aws-us-gov:iam::123456789012:role/OrgSyncReadOnly",
        org_session_name="orgsync",
        org_session_duration=3600,
        member_role_name="/security/OrgSyncMember",
        member_session_name="orgsync-member",
        member_session_duration=900,
        external_id="ext-1",
    ),
)


class FakeSts:
    """Answers assume_role with the next scripted outcome and keeps every call's parameters."""

    def __init__(self, *outcomes: Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[dict[str, Any]] = []

    def assume_role(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        return {"Credentials": {"AccessKeyId": "ASIA..."}}


def aws_error(code: str, status: int, message: str = "nope") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "AssumeRole")


def test_an_assumable_member_role_is_ok_and_is_asked_for_with_the_member_settings() -> None:
    sts = FakeSts(None)
    assert validation.assume_member_role(sts, ORG, ACCOUNT) == Validation(ValidationStatus.OK)
    assert sts.calls == [
        {
            "RoleArn": f"arn:aws-us-gov:iam::{ACCOUNT}:role/security/OrgSyncMember",
            "RoleSessionName": "orgsync-member",
            "DurationSeconds": 900,
            "ExternalId": "ext-1",
        }
    ]


def test_access_denied_fails_at_once_with_the_aws_code_and_message() -> None:
    sts = FakeSts(aws_error("AccessDenied", 403, "User: x is not authorized to perform: sts"))
    result = validation.assume_member_role(sts, ORG, ACCOUNT)
    assert result.status is ValidationStatus.ASSUME_ROLE_FAILED
    assert result.code == "AccessDenied"
    assert result.reason == "AccessDenied: User: x is not authorized to perform: sts"
    assert result.detail == "User: x is not authorized to perform: sts"
    assert len(sts.calls) == 1


@pytest.mark.parametrize(
    "error",
    [
        aws_error("Throttling", 400, "Rate exceeded"),
        aws_error("InternalFailure", 500),
        aws_error("", 503),
        EndpointConnectionError(endpoint_url="https://sts.amazonaws.com"),
    ],
    ids=["throttling", "internal-failure", "bare-503", "connection"],
)
def test_throttling_server_errors_and_connection_errors_are_raised_for_a_retry(
    error: Exception,
) -> None:
    with pytest.raises(TransientAwsError) as raised:
        validation.assume_member_role(FakeSts(error), ORG, ACCOUNT)
    assert raised.value.error.transient
    assert raised.value.__cause__ is error


def test_a_transient_error_that_outlasts_the_retries_fails_as_gave_up_after_n_attempts() -> None:
    with pytest.raises(TransientAwsError) as raised:
        validation.assume_member_role(
            FakeSts(aws_error("InternalFailure", 500, "internal error")), ORG, ACCOUNT
        )
    result = validation.gave_up(raised.value, 4)
    assert result.status is ValidationStatus.ASSUME_ROLE_FAILED
    assert result.code == "InternalFailure"
    assert result.reason == "gave up after 4 attempts: InternalFailure: internal error"
    assert result.detail == result.reason


def test_an_ok_validation_has_no_reason() -> None:
    assert Validation(ValidationStatus.OK).reason is None


def test_retry_delays_grow_with_the_attempt_and_stay_far_under_the_consumer_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the top of each range
    ceilings = [validation.retry_delay_ms(attempt) for attempt in range(1, 30)]
    assert ceilings[:4] == [2_000, 4_000, 8_000, 16_000]
    assert max(ceilings) == MAX_BACKOFF_SECONDS * 1000 < 30 * 60 * 1000 / 5
