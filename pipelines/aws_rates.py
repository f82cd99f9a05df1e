"""`aws_rates`, an organization's own floor and ceiling per Organizations API: what its JSON
Schema cannot say.

The schema states the shape (an object of up to 50 entries, each `{"floor": f, "ceiling": c}`
with 0.5 <= f, c <= 1000: `MIN_AWS_RATE` and `MAX_AWS_RATE` here, the bounds wherever a rate is
read, ORGSYNC_AWS_RATES, `--aws-rates` and the console's form too). Two rules stay here: each
key must be an operation of AWS Organizations in botocore's service model (or `*`), an STS call
being refused with its reason; and a floor must not exceed its ceiling. Each entry's problems
are prefixed with its quoted key.
"""

from __future__ import annotations

import difflib
from functools import cache
from typing import Any

import botocore.session
from jsonschema import ValidationError

from orgsync.pipelines.schemas import describe, quote
from orgsync.schema import message_schema

_RATE_LIMIT = message_schema("registration_request")["$defs"]["rate_limit"]
MIN_AWS_RATE = float(_RATE_LIMIT["minimum"])  # calls/s, a floor or a ceiling
MAX_AWS_RATE = float(_RATE_LIMIT["maximum"])


@cache
def operation_names(service: str) -> frozenset[str]:
    """The operations of an AWS service, from botocore's service model (loaded once)."""
    model = botocore.session.get_session().get_service_model(service)
    return frozenset(model.operation_names)


def rate_messages(value: object, found: list[ValidationError]) -> list[str]:
    """The field's problems: its own (type, size) alone, else each entry's in the given order.

    `found` holds the schema's errors under `aws_rates`, gated; a key's `propertyNames` failure
    is left to the API-name rule, which such a key fails too."""
    own = [e for e in found if len(e.path) == 1 and "propertyNames" not in e.relative_schema_path]
    if own or not isinstance(value, dict):
        return [describe(error) for error in own]
    return [
        f"{quote(str(api))}: {message}"
        for api, limits in value.items()
        for message in _api_problems(api) or _limit_problems(limits, found, api)
    ]


def _api_problems(api: str) -> list[str]:
    organizations = operation_names("organizations")
    if api == "*" or api in organizations:
        return []
    if api in operation_names("sts"):
        return [
            "an STS call, counted against orgsync's own account, not the organization's:"
            " set it in ORGSYNC_AWS_RATES"
        ]
    return [f"not an AWS Organizations operation{_did_you_mean(api, organizations)}"]


def unknown_api(api: str) -> str | None:
    """Why `api` names no call the rate budget paces (an Organizations or an STS operation, or
    `*`), with the likely one; None when it names one. For ORGSYNC_AWS_RATES, where a misspelt
    name would otherwise set a rate nothing ever asks for."""
    known = operation_names("organizations") | operation_names("sts")
    if api == "*" or api in known:
        return None
    return f"{api!r} is not an AWS Organizations or STS operation{_did_you_mean(api, known)}"


def _did_you_mean(name: str, known: frozenset[str]) -> str:
    by_case = {option.lower(): option for option in known}
    close = difflib.get_close_matches(name, sorted(known), n=1)
    match = by_case.get(name.lower()) or (close[0] if close else None)
    return f" (did you mean {match!r}?)" if match else " (or '*' for every one not named)"


def _limit_problems(limits: Any, found: list[ValidationError], api: str) -> list[str]:
    mine = [error for error in found if len(error.path) > 1 and error.path[1] == api]
    messages = list(dict.fromkeys(describe(error) for error in mine))
    if not messages and limits["floor"] > limits["ceiling"]:
        messages.append(f"floor {limits['floor']} must not exceed ceiling {limits['ceiling']}")
    return messages
