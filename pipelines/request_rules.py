"""A registration (or update) request: its fields, its checks and what it becomes.

The request's shape is schema/messages/registration_request.json; ``check_request`` validates
against it and reports every problem at once, at most one per field, so a form or a verdict can
show them side by side (`request_problems` words them, `aws_rates` adds what a schema cannot
say). Pure: no I/O, no environment, but for botocore's service models of Organizations and STS.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from orgsync.pipelines.aws_rates import MAX_AWS_RATE as MAX_AWS_RATE
from orgsync.pipelines.aws_rates import MIN_AWS_RATE as MIN_AWS_RATE
from orgsync.pipelines.aws_rates import operation_names as operation_names
from orgsync.pipelines.request_problems import PARTITIONS as PARTITIONS
from orgsync.pipelines.request_problems import (
    SCHEMA,
    field_messages,
    request_problems,
)
from orgsync.pipelines.schemas import errors, gated, json_type
from orgsync.schema import message_schema

CREDENTIAL_FIELDS = (
    "org_role_arn",
    "org_session_name",
    "org_session_duration",
    "member_role_name",
    "member_session_name",
    "member_session_duration",
    "external_id",
)
# settings of the organization other than its credentials; an update may change any one alone
FILTER_FIELDS = (
    "exclude_prefixes",
    "auto_remove_suspended",
    "auto_badge",
    "limit_ou_ids",
    "sync_interval_seconds",
    "events_queue_url",
    "aws_rates",
)
ALL_FIELDS = ("request_id", "org_id", "nickname", *CREDENTIAL_FIELDS, *FILTER_FIELDS)
_SHAPE = message_schema(SCHEMA)
# what a request that names its roles may leave out: the session names and durations
CREDENTIAL_DEFAULTS: dict[str, object] = {
    name: _SHAPE["properties"][name]["default"]
    for name in CREDENTIAL_FIELDS
    if "default" in _SHAPE["properties"][name]
}
# what credentials must name: the two roles (external_id is optional)
REQUIRED_CREDENTIAL_FIELDS = tuple(
    name for name in CREDENTIAL_FIELDS if name not in CREDENTIAL_DEFAULTS and name != "external_id"
)
MAX_AWS_RATE_ENTRIES: int = _SHAPE["properties"]["aws_rates"]["maxProperties"]
_AWS_QUEUE_URL = re.compile(
    r"https://sqs\.([a-z0-9-]{1,30})\.amazonaws\.com(\.cn)?/[0-9]{12}/[A-Za-z0-9_-]{1,80}(\.fifo)?"
)


@dataclass(frozen=True)
class Problem:
    field: str
    message: str


@dataclass(frozen=True, kw_only=True, repr=False)
class Credentials:
    org_role_arn: str
    org_session_name: str
    org_session_duration: int
    member_role_name: str
    member_session_name: str
    member_session_duration: int
    external_id: str | None = None

    @property
    def partition(self) -> str:
        return self.org_role_arn.split(":")[1]

    @property
    def management_account_id(self) -> str:
        return self.org_role_arn.split(":")[4]

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"


@dataclass(frozen=True, kw_only=True)
class Filters:
    exclude_prefixes: tuple[str, ...] = ()
    auto_remove_suspended: bool = False
    auto_badge: bool = False
    limit_ou_ids: tuple[str, ...] = ()
    sync_interval_seconds: int | None = None  # None: the scheduler's ORGSYNC_SYNC_INTERVAL
    events_queue_url: str | None = None  # None: no change-event feed
    # None: ORGSYNC_AWS_RATES; else {"<API or *>": {"floor": f, "ceiling": c}} in calls/s
    aws_rates: Mapping[str, Mapping[str, float]] | None = field(default=None, hash=False)

    def updated(self, changes: Mapping[str, object]) -> Filters:
        """These filters with the fields in ``changes`` replaced and every other field kept."""
        unknown = sorted(set(changes) - set(FILTER_FIELDS))
        if unknown:
            raise ValueError(f"not filter fields: {', '.join(unknown)}")
        values: dict[str, Any] = {
            name: tuple(value) if isinstance(value, list) else value
            for name, value in changes.items()
        }
        return replace(self, **values)


@dataclass(frozen=True, kw_only=True)
class RegistrationRequest:
    request_id: str
    org_id: str | None  # None: a new registration
    nickname: str | None  # None on an update: keep the nickname
    credentials: Credentials | None  # None on an update: keep the stored credentials
    filter_changes: dict[str, object] = field(default_factory=dict)  # only the fields given

    @property
    def is_update(self) -> bool:
        return self.org_id is not None

    def filters(self, existing: Filters | None = None) -> Filters:
        """The filters after this request: its changes onto ``existing``, else onto defaults."""
        return (Filters() if existing is None else existing).updated(self.filter_changes)


def check_request(
    raw: object, sqs_endpoint: str | None = None
) -> tuple[RegistrationRequest | None, list[Problem]]:
    """The request, or None and every formatting problem, each naming its field.

    `sqs_endpoint` is AWS_ENDPOINT_URL where it is set: a queue URL under it is accepted too."""
    if not isinstance(raw, dict):
        return None, [Problem("request", f"must be a JSON object, got {json_type(raw)}")]
    raw = with_defaults(raw)
    problems = [Problem(name, message) for name, message in request_problems(raw, sqs_endpoint)]
    if problems:
        return None, problems
    return _build(raw), []


def with_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` with the schema's defaults for the session names and durations it leaves out, when
    it gives credentials: always on a registration, and on an update that names any credential
    field (an update naming none keeps the stored credentials whole)."""
    if "org_id" in raw and not any(name in raw for name in CREDENTIAL_FIELDS):
        return raw
    return {**{k: v for k, v in CREDENTIAL_DEFAULTS.items() if k not in raw}, **raw}


def field_problems(name: str, value: object, sqs_endpoint: str | None = None) -> list[str]:
    """The problems the request's rule for field `name` finds in `value` alone (a standalone
    account's role is checked by the same rules as an organization's)."""
    found = gated(errors(SCHEMA, {"request_id": "r", "org_id": "o-0000000000", name: value}))
    mine = [error for error in found if error.path and error.path[0] == name]
    return field_messages(name, value, mine, sqs_endpoint)


def queue_url_problems(value: object, sqs_endpoint: str | None = None) -> list[str]:
    """An SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>), one under
    `sqs_endpoint`, or null (no feed)."""
    return field_problems("events_queue_url", value, sqs_endpoint)


def queue_region(url: str) -> str | None:
    """The region of an AWS queue URL; None for one under AWS_ENDPOINT_URL."""
    found = _AWS_QUEUE_URL.fullmatch(url)
    return found.group(1) if found else None


def redacted(request: RegistrationRequest) -> dict[str, object]:
    """The request without any credential value: safe to store and to log."""
    return {
        "request_id": request.request_id,
        "org_id": request.org_id,
        "nickname": request.nickname,
        "filters": {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in request.filter_changes.items()
        },
        "credentials": "kept" if request.credentials is None else "given",
    }


def _build(raw: Mapping[str, Any]) -> RegistrationRequest:
    # Only called once every field has passed its rule, so the values have their types.
    credentials = None
    if "org_role_arn" in raw:
        values: dict[str, Any] = {name: raw.get(name) for name in CREDENTIAL_FIELDS}
        credentials = Credentials(**values)
    return RegistrationRequest(
        request_id=raw["request_id"],
        org_id=raw.get("org_id"),
        nickname=raw.get("nickname"),
        credentials=credentials,
        filter_changes={
            name: tuple(raw[name]) if isinstance(raw[name], list) else raw[name]
            for name in FILTER_FIELDS
            if name in raw
        },
    )
