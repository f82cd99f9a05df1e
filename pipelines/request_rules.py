"""The formatting rules of a registration (or update) request, as AWS itself defines them.

Pure: no I/O, no environment, but for botocore's service models of Organizations and STS, read
once from the installed botocore: they say which API names `aws_rates` may hold.
``check_request`` reports every problem at once, at most one per field, so a form or a verdict
can show them side by side. Patterns use explicit ASCII classes and ``re.fullmatch``: in Python
``\\d`` and ``\\w`` match Unicode digits and letters, and ``$`` matches before a trailing
newline. Problem messages never quote a credential value, only the offending
characters or the wrong ARN component.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import botocore.session

PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
CREDENTIAL_FIELDS = (
    "org_role_arn",
    "org_session_name",
    "org_session_duration",
    "member_role_name",
    "member_session_name",
    "member_session_duration",
    "external_id",
)
REQUIRED_CREDENTIAL_FIELDS = CREDENTIAL_FIELDS[:-1]  # external_id is optional
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

MIN_SESSION_DURATION = 900  # STS DurationSeconds
MAX_SESSION_DURATION = 43200  # IAM MaxSessionDuration ceiling, 12 hours
MAX_ROLE_ARN = 2048  # STS RoleArn
MAX_ROLE_PATH = 512  # IAM Path, counting its leading and trailing "/"
MAX_ACCOUNT_NAME = 128  # Organizations AccountName, so no prefix can usefully be longer
MIN_SYNC_INTERVAL = 60  # a per-organization interval; null falls back to ORGSYNC_SYNC_INTERVAL
MAX_SYNC_INTERVAL = 7 * 24 * 3600
# every list is bounded (issue 18): each prefix is tried against every account of every walk,
# each scope id is looked for in AWS at registration; the JSON Schema says the same (maxItems)
MAX_EXCLUDE_PREFIXES = 100
MAX_LIMIT_OU_IDS = 100
# an organization's own floor and ceiling per Organizations API, calls/s (the rate budget's
# override of ORGSYNC_AWS_RATES); no API of AWS's answers anywhere near this
MAX_AWS_RATE = 1000.0
MAX_AWS_RATE_ENTRIES = 50

_REQUEST_ID = "A-Za-z0-9._:-"
_NAME = "A-Za-z0-9_+=,.@-"  # IAM RoleName, STS RoleSessionName: [\w+=,.@-] in ASCII
_EXTERNAL_ID = "A-Za-z0-9_+=,.@:/-"
_PATH_SEGMENT = re.compile(r"[\x21-\x2E\x30-\x7E]+")  # IAM Path characters, "/" excluded
_ORG_ID = re.compile(r"o-[a-z0-9]{10,32}")
_SCOPE_ID = re.compile(r"ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32}")
_QUEUE_PATH = r"/[0-9]{12}/[A-Za-z0-9_-]{1,80}(\.fifo)?"
_AWS_QUEUE_URL = re.compile(r"https://sqs\.([a-z0-9-]{1,30})\.amazonaws\.com(\.cn)?" + _QUEUE_PATH)
MAX_QUEUE_URL = 1024


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
        return None, [Problem("request", f"must be a JSON object, got {_json_type(raw)}")]
    problems = [Problem(_field_name(key), "unknown field") for key in raw if key not in ALL_FIELDS]
    is_update = "org_id" in raw
    for name in ALL_FIELDS:
        if name == "events_queue_url" and name in raw:
            messages = queue_url_problems(raw[name], sqs_endpoint)
        elif name in raw:
            messages = _FIELD_RULES[name](raw[name])
        else:
            messages = _missing(name, is_update)
        if messages:
            problems.append(Problem(name, "; ".join(messages)))
    given = [name for name in CREDENTIAL_FIELDS if name in raw]
    missing = [name for name in REQUIRED_CREDENTIAL_FIELDS if name not in raw]
    if is_update and given and missing:
        problems.append(
            Problem(
                "credentials",
                "credential fields are all-or-nothing on an update: give all of them to replace "
                f"the credentials or none to keep them; missing {', '.join(missing)}",
            )
        )
    if problems:
        return None, problems
    return _build(raw), []


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


def _missing(name: str, is_update: bool) -> list[str]:
    if name == "request_id":
        return ["required"]
    if not is_update and (name == "nickname" or name in REQUIRED_CREDENTIAL_FIELDS):
        return ["required for a new registration (a request without org_id)"]
    return []


# --- field rules: each takes the raw value and returns its problems, empty when it is valid ---


def _token(chars: str, low: int, high: int) -> Callable[[object], list[str]]:
    def rule(value: object) -> list[str]:
        if not isinstance(value, str):
            return _not_a_string(value)
        return _token_problems(value, chars, low, high)

    return rule


def _token_problems(value: str, chars: str, low: int, high: int, what: str = "") -> list[str]:
    if re.fullmatch(f"[{chars}]{{{low},{high}}}", value):
        return []
    subject = f"{what} " if what else ""
    problems = []
    if not low <= len(value) <= high:
        span = f"exactly {low}" if low == high else f"{low} to {high}"
        problems.append(f"{subject}must be {span} characters long, got {len(value)}")
    found = _outside(value, lambda char: re.fullmatch(f"[{chars}]", char) is not None)
    if found:
        problems.append(f"{subject}may only contain [{chars}], found {found}")
    return problems


def _nickname(value: object) -> list[str]:
    if not isinstance(value, str):
        return _not_a_string(value)
    problems = []
    if not 1 <= len(value) <= 64:
        problems.append(f"must be 1 to 64 characters long, got {len(value)}")
    if not value.isprintable():
        found = _outside(value, str.isprintable)
        problems.append(f"must contain only printable characters, found {found}")
    if value != value.strip():
        problems.append("must not start or end with whitespace")
    return problems


def _role_arn(value: object) -> list[str]:
    if not isinstance(value, str):
        return _not_a_string(value)
    if len(value) > MAX_ROLE_ARN:
        return [f"must be at most {MAX_ROLE_ARN} characters long, got {len(value)}"]
    parts = value.split(":", 5)
    if len(parts) != 6:
        return ["must look like arn:<partition>:iam::<12-digit account id>:role/<name>"]
    prefix, partition, service, region, account, resource = parts
    problems = []
    if prefix != "arn":
        problems.append("must start with 'arn:'")
    if partition not in PARTITIONS:
        problems.append(f"partition {_quote(partition)} is not one of {', '.join(PARTITIONS)}")
    if service != "iam":
        problems.append(f"service {_quote(service)} is not 'iam' (give the role's own ARN)")
    if region:
        problems.append("region must be empty: IAM is global (arn:<partition>:iam::<account>:...)")
    problems += _token_problems(account, "0-9", 12, 12, what="account id")
    if resource.startswith("role/"):
        problems += _role_with_path(resource.removeprefix("role/"))
    else:
        problems.append("resource must start with 'role/', as in role/<optional path/><name>")
    return problems


def _member_role_name(value: object) -> list[str]:
    if not isinstance(value, str):
        return _not_a_string(value)
    return _role_with_path(value.removeprefix("/"))


def _role_with_path(text: str) -> list[str]:
    """Problems of ``path/segments/name`` (no leading "/"): an IAM role name under its path."""
    *segments, name = text.split("/")
    problems = _token_problems(name, _NAME, 1, 64, what="role name")
    if "" in segments:
        problems.append("path must not contain an empty segment ('//')")
    found = _outside("".join(segments), lambda char: _PATH_SEGMENT.fullmatch(char) is not None)
    if found:
        problems.append(f"path may only contain printable ASCII characters, found {found}")
    path_length = len("/".join(segments)) + 2 if segments else 1
    if path_length > MAX_ROLE_PATH:
        problems.append(f"path must be at most {MAX_ROLE_PATH} characters long, got {path_length}")
    return problems


def _duration(value: object) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"must be an integer (seconds), got {_json_type(value)}"]
    if not MIN_SESSION_DURATION <= value <= MAX_SESSION_DURATION:
        return [f"must be {MIN_SESSION_DURATION} to {MAX_SESSION_DURATION} seconds, got {value}"]
    return []


def _sync_interval(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"must be an integer (seconds) or null, got {_json_type(value)}"]
    if not MIN_SYNC_INTERVAL <= value <= MAX_SYNC_INTERVAL:
        return [f"must be {MIN_SYNC_INTERVAL} to {MAX_SYNC_INTERVAL} seconds, got {value}"]
    return []


def queue_url_problems(value: object, sqs_endpoint: str | None = None) -> list[str]:
    """An SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>), one under
    `sqs_endpoint`, or null (no feed)."""
    if value is None:
        return []
    if not isinstance(value, str):
        return [f"must be an SQS queue URL or null, got {_json_type(value)}"]
    if len(value) > MAX_QUEUE_URL:
        return [f"must be at most {MAX_QUEUE_URL} characters long, got {len(value)}"]
    if _AWS_QUEUE_URL.fullmatch(value):
        return []
    endpoint = (sqs_endpoint or "").rstrip("/")
    if (
        endpoint
        and value.startswith(endpoint)
        and re.fullmatch(_QUEUE_PATH, value[len(endpoint) :])
    ):
        return []
    under = f", or {endpoint}/<account>/<name>" if endpoint else ""
    return [
        f"{_quote(value)} is not an SQS queue URL"
        f" (https://sqs.<region>.amazonaws.com/<12-digit account>/<queue name>{under})"
    ]


@cache
def operation_names(service: str) -> frozenset[str]:
    """The operations of an AWS service, from botocore's service model (loaded once)."""
    model = botocore.session.get_session().get_service_model(service)
    return frozenset(model.operation_names)


def _aws_rates(value: object) -> list[str]:
    """null, or {"<Organizations API or *>": {"floor": f, "ceiling": c}}, 0 < f <= c <= 1000."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return [
            'must be a JSON object such as {"*": {"floor": 1, "ceiling": 20}}, or null,'
            f" got {_json_type(value)}"
        ]
    if not value:
        return ["must name at least one API: use null for no override"]
    if len(value) > MAX_AWS_RATE_ENTRIES:
        return [
            f"must hold at most {MAX_AWS_RATE_ENTRIES} entries (maxProperties), got {len(value)}"
        ]
    return [
        f"{_quote(str(api))}: {message}"
        for api, limits in value.items()
        for message in _rate_api(api) or _rate_limits(limits)
    ]


def _rate_api(api: object) -> list[str]:
    organizations = operation_names("organizations")
    if api == "*" or api in organizations:
        return []
    if api in operation_names("sts"):
        return [
            "an STS call, counted against orgsync's own account, not the organization's:"
            " set it in ORGSYNC_AWS_RATES"
        ]
    return [f"not an AWS Organizations operation{_did_you_mean(str(api), organizations)}"]


def _did_you_mean(name: str, known: frozenset[str]) -> str:
    by_case = {option.lower(): option for option in known}
    close = difflib.get_close_matches(name, sorted(known), n=1)
    match = by_case.get(name.lower()) or (close[0] if close else None)
    return f" (did you mean {match!r}?)" if match else " (or '*' for every one not named)"


def _rate_limits(limits: object) -> list[str]:
    if not isinstance(limits, dict):
        return [f'must be {{"floor": number, "ceiling": number}}, got {_json_type(limits)}']
    missing = [name for name in ("floor", "ceiling") if name not in limits]
    unknown = sorted(_quote(str(name)) for name in limits if name not in ("floor", "ceiling"))
    problems = [f"{name} is required" for name in missing]
    if unknown:
        problems.append(f"unknown {', '.join(unknown)} (only floor and ceiling)")
    numbers = {name: limits[name] for name in ("floor", "ceiling") if name in limits}
    for name, number in numbers.items():
        if isinstance(number, bool) or not isinstance(number, int | float):
            problems.append(f"{name} must be a number (calls/s), got {_json_type(number)}")
        elif not 0 < number <= MAX_AWS_RATE:  # NaN fails it too
            problems.append(
                f"{name} must be above 0 and at most {MAX_AWS_RATE:g} calls/s, got {number}"
            )
    if not problems and numbers["floor"] > numbers["ceiling"]:
        problems.append(f"floor {numbers['floor']} must not exceed ceiling {numbers['ceiling']}")
    return problems


def queue_region(url: str) -> str | None:
    """The region of an AWS queue URL; None for one under AWS_ENDPOINT_URL."""
    found = _AWS_QUEUE_URL.fullmatch(url)
    return found.group(1) if found else None


def _boolean(value: object) -> list[str]:
    return [] if isinstance(value, bool) else [f"must be true or false, got {_json_type(value)}"]


def _org_id(value: object) -> list[str]:
    if not isinstance(value, str):
        return _not_a_string(value)
    if _ORG_ID.fullmatch(value):
        return []
    return [f"{_quote(value)} is not an organization id (o- and 10 to 32 of [a-z0-9])"]


def _exclude_prefix(item: object) -> list[str]:
    if not isinstance(item, str):
        return _not_a_string(item)
    if not 1 <= len(item) <= MAX_ACCOUNT_NAME:
        return [f"must be 1 to {MAX_ACCOUNT_NAME} characters long, got {len(item)}"]
    if not item.isprintable():
        return [f"must contain only printable characters, found {_outside(item, str.isprintable)}"]
    return []


def _scope_id(item: object) -> list[str]:
    if not isinstance(item, str):
        return _not_a_string(item)
    if _SCOPE_ID.fullmatch(item):
        return []
    return [f"{_quote(item)} is neither an OU id (ou-...) nor a root id (r-...)"]


def _unique_list(
    item_rule: Callable[[object], list[str]], max_items: int
) -> Callable[[object], list[str]]:
    def rule(value: object) -> list[str]:
        if not isinstance(value, list):
            return [f"must be a JSON array, got {_json_type(value)}"]
        if len(value) > max_items:
            return [f"must hold at most {max_items} items (maxItems), got {len(value)}"]
        problems = [
            f"item {index}: {message}"
            for index, item in enumerate(value)
            for message in item_rule(item)
        ]
        first_seen: dict[str, int] = {}
        for index, item in enumerate(value):
            if isinstance(item, str) and first_seen.setdefault(item, index) != index:
                problems.append(f"item {index} repeats item {first_seen[item]}")
        return problems

    return rule


_FIELD_RULES: dict[str, Callable[[object], list[str]]] = {
    "request_id": _token(_REQUEST_ID, 1, 128),
    "org_id": _org_id,
    "nickname": _nickname,
    "org_role_arn": _role_arn,
    "org_session_name": _token(_NAME, 2, 64),
    "org_session_duration": _duration,
    "member_role_name": _member_role_name,
    "member_session_name": _token(_NAME, 2, 64),
    "member_session_duration": _duration,
    "external_id": _token(_EXTERNAL_ID, 2, 1224),
    "exclude_prefixes": _unique_list(_exclude_prefix, MAX_EXCLUDE_PREFIXES),
    "auto_remove_suspended": _boolean,
    "auto_badge": _boolean,
    "limit_ou_ids": _unique_list(_scope_id, MAX_LIMIT_OU_IDS),
    "sync_interval_seconds": _sync_interval,
    "events_queue_url": queue_url_problems,
    "aws_rates": _aws_rates,
}


def _not_a_string(value: object) -> list[str]:
    return [f"must be a string, got {_json_type(value)}"]


_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),  # before int: a bool is an int in Python, not in JSON
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
    (type(None), "null"),
)


def _json_type(value: object) -> str:
    names = (name for kind, name in _JSON_TYPES if isinstance(value, kind))
    return next(names, type(value).__name__)


def _outside(value: str, allowed: Callable[[str], bool]) -> str:
    """The first few distinct characters of ``value`` that ``allowed`` rejects, escaped."""
    rejected = list(dict.fromkeys(char for char in value if not allowed(char)))
    return ", ".join(ascii(char) for char in rejected[:3])


def _field_name(key: object) -> str:
    """An unknown field's name as given, escaped when it could garble a log line."""
    name = str(key)
    return name if len(name) <= 64 and name.isprintable() else _quote(name)


def _quote(text: str, limit: int = 40) -> str:
    return ascii(text[:limit]) + ("..." if len(text) > limit else "")
