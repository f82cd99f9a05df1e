"""A registration request's problems, at most one per field, worded from its schema's errors.

schema/messages/registration_request.json decides what is valid; this module says why not, in
the words of `x-message` and `pipelines.schemas.describe`. What stays in code: aws_rates' API
names and floor <= ceiling (`aws_rates`), a queue URL under AWS_ENDPOINT_URL, and, where the
pattern of a role ARN or role name fails, taking the value apart to name the wrong component
(the schema can only say that the whole does not match). Messages never quote a credential
value, only the offending characters or the wrong ARN component.
"""

from __future__ import annotations

import re
from typing import Any

from jsonschema import ValidationError

from orgsync.pipelines.aws_rates import rate_messages
from orgsync.pipelines.schemas import (
    describe,
    errors,
    fill,
    gated,
    missing,
    outside,
    quote,
    validator,
)

SCHEMA = "registration_request"
PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
MAX_ROLE_PATH = 512  # IAM Path, counting its leading and trailing "/"
NAME_CHARS = "A-Za-z0-9_+=,.@-"  # IAM RoleName, STS RoleSessionName: [\w+=,.@-] in ASCII
_PATH_CHAR = re.compile(r"[\x21-\x2E\x30-\x7E]")  # IAM Path characters, "/" excluded
_QUEUE_PATH = re.compile(r"/[0-9]{12}/[A-Za-z0-9_-]{1,80}(\.fifo)?")
CREDENTIALS_RULE = (
    "credential fields are all-or-nothing on an update: give both roles to replace the "
    "credentials (session names and durations left out take their defaults, orgsync and "
    "3600 s) or no credential field to keep them; missing {missing}"
)


def request_problems(raw: dict[str, Any], sqs_endpoint: str | None = None) -> list[tuple[str, str]]:
    """(field, message) for every problem: unknown fields, each field's, then the credentials'."""
    found = gated(errors(SCHEMA, raw))
    properties = list(validator(SCHEMA).schema["properties"])
    problems = [(field_name(key), "unknown field") for key in raw if key not in properties]
    for name in properties:
        messages = field_messages(name, raw.get(name), _under(name, found), sqs_endpoint)
        messages += [
            fill(_required_message(error), name, error.schema)
            for error in found
            if error.validator == "required" and not error.path and name in missing(error)
        ]
        if messages:
            problems.append((name, "; ".join(dict.fromkeys(messages))))
    absent = {name for e in found if e.validator == "dependentRequired" for name in missing(e)}
    if absent:
        listed = ", ".join(name for name in properties if name in absent)
        problems.append(("credentials", CREDENTIALS_RULE.replace("{missing}", listed)))
    return problems


def field_messages(
    name: str, value: object, found: list[ValidationError], sqs_endpoint: str | None = None
) -> list[str]:
    """One field's problems, from the schema's errors at and under it."""
    if name == "aws_rates":
        return rate_messages(value, found)
    messages = []
    for error in found:
        if error.validator == "pattern" and len(error.path) == 1 and name in _EXPLAIN:
            messages += _EXPLAIN[name](str(value), sqs_endpoint)
        elif error.validator == "uniqueItems":
            messages += _repeats(error.instance)
        else:
            messages.append(_item(error) + describe(error))
    return messages


def _under(name: str, found: list[ValidationError]) -> list[ValidationError]:
    return [error for error in found if error.path and error.path[0] == name]


def _required_message(error: ValidationError) -> str:
    custom = error.schema.get("x-message") if isinstance(error.schema, dict) else None
    return (custom or {}).get("required", "required") if isinstance(custom, dict) else "required"


def _item(error: ValidationError) -> str:
    return f"item {error.path[1]}: " if len(error.path) > 1 else ""


def _repeats(items: list[object]) -> list[str]:
    first_seen: dict[str, int] = {}
    return [
        f"item {index} repeats item {first_seen[item]}"
        for index, item in enumerate(items)
        if isinstance(item, str) and first_seen.setdefault(item, index) != index
    ]


# --- where a pattern fails, which part of the value is wrong ---


def role_arn_problems(value: str, sqs_endpoint: str | None = None) -> list[str]:
    parts = value.split(":", 5)
    if len(parts) != 6:
        return ["must look like arn:<partition>:iam::<12-digit account id>:role/<name>"]
    prefix, partition, service, region, account, resource = parts
    problems = []
    if prefix != "arn":
        problems.append("must start with 'arn:'")
    if partition not in PARTITIONS:
        problems.append(f"partition {quote(partition)} is not one of {', '.join(PARTITIONS)}")
    if service != "iam":
        problems.append(f"service {quote(service)} is not 'iam' (give the role's own ARN)")
    if region:
        problems.append("region must be empty: IAM is global (arn:<partition>:iam::<account>:...)")
    problems += token_problems(account, "0-9", 12, 12, what="account id")
    if resource.startswith("role/"):
        problems += role_path_problems(resource.removeprefix("role/"))
    else:
        problems.append("resource must start with 'role/', as in role/<optional path/><name>")
    return problems


def member_role_problems(value: str, sqs_endpoint: str | None = None) -> list[str]:
    return role_path_problems(value.removeprefix("/"))


def role_path_problems(text: str) -> list[str]:
    """Problems of ``path/segments/name`` (no leading "/"): an IAM role name under its path."""
    *segments, name = text.split("/")
    problems = token_problems(name, NAME_CHARS, 1, 64, what="role name")
    if "" in segments:
        problems.append("path must not contain an empty segment ('//')")
    found = outside("".join(segments), lambda char: _PATH_CHAR.fullmatch(char) is not None)
    if found:
        problems.append(f"path may only contain printable ASCII characters, found {found}")
    path_length = len("/".join(segments)) + 2 if segments else 1
    if path_length > MAX_ROLE_PATH:
        problems.append(f"path must be at most {MAX_ROLE_PATH} characters long, got {path_length}")
    return problems


def token_problems(value: str, chars: str, low: int, high: int, what: str) -> list[str]:
    problems = []
    if not low <= len(value) <= high:
        span = f"exactly {low}" if low == high else f"{low} to {high}"
        problems.append(f"{what} must be {span} characters long, got {len(value)}")
    found = outside(value, lambda char: re.fullmatch(f"[{chars}]", char) is not None)
    if found:
        problems.append(f"{what} may only contain [{chars}], found {found}")
    return problems


def queue_url_problem(value: str, sqs_endpoint: str | None = None) -> list[str]:
    """Nothing for a URL under `sqs_endpoint` (AWS_ENDPOINT_URL), else the form expected."""
    endpoint = (sqs_endpoint or "").rstrip("/")
    if endpoint and value.startswith(endpoint) and _QUEUE_PATH.fullmatch(value[len(endpoint) :]):
        return []
    under = f", or {endpoint}/<account>/<name>" if endpoint else ""
    return [
        f"{quote(value)} is not an SQS queue URL"
        f" (https://sqs.<region>.amazonaws.com/<12-digit account>/<queue name>{under})"
    ]


_EXPLAIN = {
    "org_role_arn": role_arn_problems,
    "member_role_name": member_role_problems,
    "events_queue_url": queue_url_problem,
}


def field_name(key: object) -> str:
    """An unknown field's name as given, escaped when it could garble a log line."""
    name = str(key)
    return name if len(name) <= 64 and name.isprintable() else quote(name)
