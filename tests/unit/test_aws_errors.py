from __future__ import annotations

import random
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from orgsync.pipelines.aws_errors import (
    MAX_BACKOFF_SECONDS,
    PERMANENT_CODES,
    TRANSIENT_CODES,
    Deferred,
    ErrorClass,
    again_after,
    backoff_seconds,
    classify,
)

URL = "https://organizations.us-east-1.amazonaws.com/"


def client_error(code: str, status: int | None, message: str = "boom") -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": message}}
    if status is not None:
        response["ResponseMetadata"] = {
            "RequestId": "req-1",
            "HTTPStatusCode": status,
            "HTTPHeaders": {},
            "RetryAttempts": 0,
        }
    return ClientError(response, "ListAccounts")  # type: ignore[arg-type]


# The codes the design names explicitly; the tables may hold more.
NAMED_TRANSIENT = {
    "Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
    "RequestThrottled", "RequestThrottledException", "SlowDown",
    "ProvisionedThroughputExceededException", "ServiceUnavailable", "ServiceUnavailableException",
    "InternalFailure", "InternalError", "InternalServerError", "InternalServiceError",
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
    "EC2ThrottledException", "IDPCommunicationError",
}  # fmt: skip
NAMED_PERMANENT = {
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "InvalidClientTokenId",
    "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException", "RegionDisabledException",
    "MalformedPolicyDocument", "ValidationError", "InvalidParameterValue",
    "AWSOrganizationsNotInUseException", "AccountNotFoundException", "TargetNotFoundException",
}  # fmt: skip


def test_the_code_tables_hold_every_named_code_and_do_not_overlap() -> None:
    assert NAMED_TRANSIENT <= TRANSIENT_CODES
    assert NAMED_PERMANENT <= PERMANENT_CODES
    assert not TRANSIENT_CODES & PERMANENT_CODES


@pytest.mark.parametrize("code", sorted(TRANSIENT_CODES))
def test_transient_codes_are_retried_even_when_sent_with_http_400(code: str) -> None:
    assert classify(client_error(code, 400, "Rate exceeded")) == ErrorClass(
        transient=True, code=code, message="Rate exceeded"
    )


@pytest.mark.parametrize("code", sorted(PERMANENT_CODES))
def test_permanent_codes_are_not_retried(code: str) -> None:
    assert classify(client_error(code, 400, "no")) == ErrorClass(False, code, "no")


@pytest.mark.parametrize("code", sorted(PERMANENT_CODES))
def test_a_permanent_code_stays_permanent_whatever_the_status(code: str) -> None:
    assert classify(client_error(code, 503)).transient is False


@pytest.mark.parametrize(
    ("code", "status", "transient"),
    [
        ("SomeNewValidationFault", 400, False),
        ("SomeNewNotFound", 404, False),
        ("SomeNewConflict", 409, False),
        ("SomeNewOutage", 500, True),
        ("SomeNewGatewayFault", 502, True),
        ("SomeNewOutage", 503, True),
        ("SomeNewRateLimit", 429, True),
        ("SomeNewFault", None, False),
    ],
)
def test_unknown_codes_are_judged_by_http_status(
    code: str, status: int | None, transient: bool
) -> None:
    result = classify(client_error(code, status))

    assert result.transient is transient
    assert result.code == code


def test_a_numeric_code_without_a_body_is_judged_by_that_status() -> None:
    assert classify(client_error("502", None, "Bad Gateway")) == ErrorClass(
        True, "502", "Bad Gateway"
    )


MOTO_403_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>\n<ErrorResponse><Errors><Error>'
    "<Code>InvalidClientTokenId</Code>"
    "<Message>The security token included in the request is invalid.</Message>"
    "<Type>Sender</Type></Error></Errors></ErrorResponse>"
)


def test_a_moto_style_403_is_permanent_and_names_the_real_code() -> None:
    assert classify(client_error("403", 403, MOTO_403_BODY)) == ErrorClass(
        transient=False,
        code="InvalidClientTokenId",
        message="The security token included in the request is invalid.",
    )


def test_a_moto_style_403_without_an_xml_body_is_access_denied() -> None:
    assert classify(client_error("403", 403, "Forbidden")) == ErrorClass(
        False, "AccessDenied", "Forbidden"
    )


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url=URL),
        ConnectTimeoutError(endpoint_url=URL),
        ReadTimeoutError(endpoint_url=URL),
        ConnectionClosedError(endpoint_url=URL),
        ResponseParserError("Unable to parse response (<html>502 Bad Gateway</html>)"),
        ConnectionError("connection reset by peer"),
        ConnectionResetError("reset"),
        TimeoutError("timed out"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_network_failures_are_transient(error: BaseException) -> None:
    result = classify(error)

    assert result.transient is True
    assert result.code == type(error).__name__


@pytest.mark.parametrize(
    "error",
    [NoCredentialsError(), RuntimeError("bug"), ValueError("bad input"), KeyError("x")],
    ids=lambda error: type(error).__name__,
)
def test_other_errors_are_permanent_and_named_by_class(error: BaseException) -> None:
    result = classify(error)

    assert result.transient is False
    assert result.code == type(error).__name__


def test_messages_are_one_bounded_line() -> None:
    page = "<html>\n<body>\r\n" + "Service Unavailable " * 200 + "</body></html>"

    message = classify(client_error("503", 503, page)).message

    assert "\n" not in message and "\r" not in message
    assert len(message) <= 300
    assert message.endswith("...")


def test_backoff_ceiling_doubles_until_the_cap() -> None:
    class TopOfRange(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    ceilings = [backoff_seconds(n, base=1.0, cap=60.0, rng=TopOfRange()) for n in range(8)]

    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_backoff_grows_on_average() -> None:
    rng = random.Random(7)

    def mean(attempt: int) -> float:
        return sum(backoff_seconds(attempt, rng=rng) for _ in range(500)) / 500

    assert mean(0) < mean(3) < mean(6)


def test_backoff_has_jitter() -> None:
    rng = random.Random(11)

    delays = {backoff_seconds(5, rng=rng) for _ in range(50)}

    assert len(delays) > 40
    assert min(delays) >= 0.0 and max(delays) <= 32.0


@pytest.mark.parametrize("attempt", [9, 20, 100, 10_000])
def test_backoff_never_exceeds_the_cap(attempt: int) -> None:
    rng = random.Random(attempt)

    delays = [backoff_seconds(attempt, rng=rng) for _ in range(200)]
    delays.append(backoff_seconds(attempt))

    assert all(0.0 <= d <= MAX_BACKOFF_SECONDS for d in delays)
    assert all(0.0 <= backoff_seconds(attempt, cap=30.0, rng=rng) <= 30.0 for _ in range(200))


def test_the_backoff_cap_stays_far_under_rabbitmqs_consumer_timeout() -> None:
    assert MAX_BACKOFF_SECONDS * 4 <= 30 * 60
    with pytest.raises(ValueError):
        backoff_seconds(1, cap=MAX_BACKOFF_SECONDS + 1)


@pytest.mark.parametrize("kwargs", [{"attempt": -1}, {"attempt": 1, "base": 0.0}])
def test_backoff_rejects_nonsense_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        backoff_seconds(**kwargs)


def test_accounts_the_budget_deferred_go_round_at_its_next_slot_others_after_their_backoff() -> (
    None
):
    deferred = [classify(Deferred("ListTagsForResource", s)) for s in (1.4, 1.2)]
    throttled = ErrorClass(True, "Throttling", "slow down")
    assert again_after(deferred, backoff=8.0) == 1.2
    assert again_after([*deferred, throttled], backoff=8.0) == 8.0


def test_a_deferral_never_delays_a_page_past_the_longest_backoff() -> None:
    far = classify(Deferred("ListTagsForResource", 10_000.0))
    assert again_after([far], backoff=1.0) == MAX_BACKOFF_SECONDS


def test_a_code_of_non_ascii_digits_is_not_read_as_a_status() -> None:
    error = ClientError({"Error": {"Code": "²", "Message": "x"}}, "ListRoots")
    assert classify(error).code == "²"
