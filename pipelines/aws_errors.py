"""Decide whether an AWS or network error is worth retrying, and how long to wait.

``classify`` is pure: it looks only at the exception. Error codes are checked first (AWS sends
``Throttling`` with HTTP 400), then the HTTP status (5xx and 429 are transient, any other status
is permanent). Messages are flattened to one bounded line, without ARNs or role names
(pipelines/redaction.py), so they are safe to log and store.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.parsers import ResponseParserError

from orgsync.pipelines.redaction import scrub_text

TRANSIENT_CODES: frozenset[str] = frozenset(
    {
        "BandwidthLimitExceeded",
        "ConcurrentModificationException",
        "EC2ThrottledException",
        "IDPCommunicationError",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServiceError",
        "PriorRequestNotComplete",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "SlowDown",
        "ThrottledException",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "TransactionInProgressException",
    }
)

PERMANENT_CODES: frozenset[str] = frozenset(
    {
        "AWSOrganizationsNotInUseException",
        "AccessDenied",
        "AccessDeniedException",
        "AccessDeniedForDependencyException",
        "AccountNotFoundException",
        "AuthFailure",
        "ChildNotFoundException",
        "ConstraintViolationException",
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "InvalidAction",
        "InvalidClientTokenId",
        "InvalidIdentityToken",
        "InvalidInputException",
        "InvalidParameterCombination",
        "InvalidParameterValue",
        "MalformedPolicyDocument",
        "MissingAuthenticationToken",
        "MissingParameter",
        "NoSuchEntity",
        "OptInRequired",
        "OrganizationalUnitNotFoundException",
        "PackedPolicyTooLarge",
        "ParentNotFoundException",
        "RegionDisabledException",
        "RootNotFoundException",
        "SignatureDoesNotMatch",
        "TargetNotFoundException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "ValidationError",
        "ValidationException",
    }
)

# AWS's "slow down" answers (a subset of TRANSIENT_CODES): the rate budget
# (services/adapters/budget/) lowers its rate on them and waits for a token instead of letting
# them count as failures.
THROTTLING_CODES: frozenset[str] = frozenset(
    {
        "EC2ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "ThrottledException",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
    }
)


def is_throttling(code: str, status: object = None) -> bool:
    """AWS asked for fewer requests: a throttling code, or HTTP 429 whatever the code."""
    return code in THROTTLING_CODES or status == 429


# Every delay stays far under RabbitMQ's consumer_timeout (30 minutes by default): a delayed
# dramatiq message is held unacked by the worker until its ETA, and a hold longer than the
# timeout makes the broker close the channel and redeliver every held message.
MAX_BACKOFF_SECONDS = 300.0

MAX_MESSAGE_CHARS = 300

# botocore's ConnectionError covers EndpointConnectionError and ConnectTimeoutError; HTTPClientError
# covers ReadTimeoutError and ConnectionClosedError. ResponseParserError is what an HTTP 5xx HTML
# page from a proxy or load balancer in front of AWS turns into.
_NETWORK_ERRORS = (
    BotocoreConnectionError,
    HTTPClientError,
    ResponseParserError,
    ConnectionError,
    TimeoutError,
)

_XML_CODE = re.compile(r"<Code>([^<]{1,128})</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")


DEFERRED = "BudgetDeferred"


class Deferred(Exception):
    """The organization's AWS rate budget has no slot for this call within the short wait a
    thread may spend on it (services/adapters/budget/): the call was not sent, and its budget's
    next free slot is `after_s` away. The work goes back with that delay and the thread serves
    other work."""

    def __init__(self, api: str, after_s: float) -> None:
        super().__init__(f"{api}: the rate budget's next free slot is {after_s:.1f} s away")
        self.after_s = after_s


@dataclass(frozen=True)
class ErrorClass:
    transient: bool
    code: str
    message: str
    retry_after: float | None = None  # a deferred call: when its budget has a slot

    @property
    def throttling(self) -> bool:
        return is_throttling(self.code) or self.code in ("HTTP429", DEFERRED)


def classify(error: BaseException) -> ErrorClass:
    """Transient errors are worth retrying; anything unrecognised (``NoCredentialsError``, a bug)
    is permanent and keeps its class name as the code."""
    if isinstance(error, Deferred):
        return ErrorClass(True, DEFERRED, str(error), retry_after=error.after_s)
    if isinstance(error, ClientError):
        return _classify_client_error(error)
    transient = isinstance(error, _NETWORK_ERRORS)
    return ErrorClass(transient, type(error).__name__, _one_line(str(error)))


def _classify_client_error(error: ClientError) -> ErrorClass:
    details = error.response.get("Error", {})
    code = str(details.get("Code", "") or "")
    message = str(details.get("Message", "") or "")
    metadata = error.response.get("ResponseMetadata")
    status = metadata.get("HTTPStatusCode") if metadata else None
    if code.isascii() and code.isdigit():
        # moto (auth mode) sends Code='403' with the real error as XML in the message.
        status = status if isinstance(status, int) else int(code)
        inner_code, inner_message = _XML_CODE.search(message), _XML_MESSAGE.search(message)
        code = inner_code.group(1) if inner_code else ("AccessDenied" if code == "403" else code)
        message = inner_message.group(1) if inner_message else message
    code = code or (f"HTTP{status}" if status else "Unknown")
    return ErrorClass(_is_transient(code, status), code, _one_line(message))


def _is_transient(code: str, status: object) -> bool:
    if code in TRANSIENT_CODES:
        return True
    if code in PERMANENT_CODES:
        return False
    return isinstance(status, int) and (status >= 500 or status == 429)


def _one_line(text: str) -> str:
    # Newlines in stored or logged text invite log injection; HTML error pages can be long;
    # AWS denials quote role ARNs and session names, and these texts are stored and listed.
    flat = scrub_text(" ".join(text.split()))
    if len(flat) > MAX_MESSAGE_CHARS:
        return flat[: MAX_MESSAGE_CHARS - 3] + "..."
    return flat


def again_after(errors: list[ErrorClass], backoff: float) -> float:
    """How long a page's accounts that go round again wait: until their budget's next free slot
    when every one of them was deferred by it, else `backoff`."""
    slots = [e.retry_after for e in errors if e.retry_after is not None]
    return min(min(slots), MAX_BACKOFF_SECONDS) if len(slots) == len(errors) > 0 else backoff


def backoff_seconds(
    attempt: int,
    *,
    base: float = 1.0,
    cap: float = MAX_BACKOFF_SECONDS,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry ``attempt`` (0 for the first retry).

    Full jitter: uniform in [0, min(cap, base * 2**attempt)]. ``cap`` may not exceed
    ``MAX_BACKOFF_SECONDS``, so no delay comes near the broker's consumer_timeout.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if base <= 0 or not 0 < cap <= MAX_BACKOFF_SECONDS:
        raise ValueError(f"need base > 0 and 0 < cap <= {MAX_BACKOFF_SECONDS}")
    ceiling = min(cap, base * 2 ** min(attempt, 64))
    draw = rng.uniform if rng is not None else random.uniform
    return min(cap, draw(0.0, ceiling))
