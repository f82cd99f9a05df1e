"""The add and edit forms: the registration request's fields, the registrar's verdict.

Submitting publishes the same `org-registration` message as `orgsync register / update` and
waits for the verdict; every rule is the registrar's, so each reason is shown beside the field
it names. Stored credentials are never filled in: blank on an edit keeps them. A rejected
form shows again what was typed, the external id excepted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orgsync.pipelines import numbers
from orgsync.pipelines.audit import By
from orgsync.pipelines.request_rules import CREDENTIAL_FIELDS
from orgsync.pipelines.sql import load
from orgsync.services.errors import ServiceUnavailable, UserError
from orgsync.services.settings import (
    SettingsError,
    parse_duration,
    parse_rate_override,
    rate_override_text,
)
from orgsync.services.use_cases import registering
from orgsync.services.web import roles
from orgsync.services.web.auth import page
from orgsync.services.web.render import render

SQL = load("orgsync.services.web")

VERDICT_TIMEOUT = 60.0


DURATION_HINT = "900-43200 s: 900, 15m, 1h; blank: 1h"


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"  # text, duration, lines (a list, one item a line), bool or rates
    hint: str = ""

    @property
    def credential(self) -> bool:
        return self.name in CREDENTIAL_FIELDS


FIELDS = (
    Field("nickname", "Nickname", hint="1-64 printable characters, unique"),
    Field("org_role_arn", "Organization role ARN", hint="arn:aws:iam::<12 digits>:role/<name>"),
    Field("org_session_name", "Organization session name", hint="blank: orgsync"),
    Field("org_session_duration", "Organization session duration", "duration", DURATION_HINT),
    Field("member_role_name", "Member role name", hint="present in every member account"),
    Field("member_session_name", "Member session name", hint="blank: orgsync"),
    Field("member_session_duration", "Member session duration", "duration", DURATION_HINT),
    Field("external_id", "External id", hint="optional"),
    Field("exclude_prefixes", "Exclude account-name prefixes", "lines", "one a line"),
    Field("auto_remove_suspended", "Remove suspended accounts", "bool"),
    Field("auto_badge", "Badges from tags (auto-badging)", "bool"),
    Field("limit_ou_ids", "Only these OU or root ids", "lines", "one a line; empty: all"),
    Field("sync_interval_seconds", "Sync interval", "duration", "3600, 90m, 6h; blank: default"),
    Field(
        "aws_rates",
        "AWS rate override",
        "rates",
        "API=FLOOR:CEILING,... in calls/s, * for every Organizations API not named;"
        " blank: the settings (ORGSYNC_AWS_RATES)",
    ),
)
NAMES = {f.name for f in FIELDS}


class FieldError(ValueError):
    """A form value that is no request value at all (a rate override that does not parse)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def request_from(form: Any, org_id: str | None) -> dict[str, Any]:
    """The registration request a submitted form stands for. Values the registrar would
    refuse (a duration that is not a whole number of ASCII digits: `nan`, `1e3`, `²`) are passed
    on as typed, for its reason; a rate override that does not parse, or is out of bounds,
    raises FieldError."""
    request: dict[str, Any] = {"request_id": f"web-{uuid.uuid4()}"}
    if org_id:
        request["org_id"] = org_id
    for f in FIELDS:
        text = str(form.get(f.name, ""))
        if f.kind == "bool":
            request[f.name] = form.get(f.name) == "on"
        elif f.kind == "lines":
            request[f.name] = [line.strip() for line in text.splitlines() if line.strip()]
        elif f.kind == "rates":
            if text.strip() or org_id:  # blank on an edit: back to the settings
                request[f.name] = rates(f, text)
        elif text.strip():
            request[f.name] = seconds(text) if f.kind == "duration" else text
        elif f.name == "sync_interval_seconds" and org_id:
            request[f.name] = None  # blank on an edit: back to the scheduler's default
    return request


def seconds(text: str) -> int | str:
    """A duration as the CLI reads it (`3600`, `90s`, `15m`, `1h`) in seconds; anything else
    as typed, for the registrar's reason."""
    number = numbers.whole(text)
    if number is not None:
        return number
    try:
        return round(parse_duration(text, "duration"))
    except SettingsError:
        return text


def rates(f: Field, text: str) -> dict[str, dict[str, float]] | None:
    try:
        return parse_rate_override(text, f.label)
    except SettingsError as error:
        raise FieldError(f.name, str(error)) from None


def filled(form: Any) -> dict[str, Any]:
    """What the form shows again after a rejection: what was typed, so that only the fields
    named wrong need correcting; never the external id, a secret."""
    return {f.name: form.get(f.name, "") for f in FIELDS if f.name != "external_id"}


def current(conn: Any, org_id: str) -> dict[str, Any] | None:
    row = conn.execute(SQL["organization_form"], (org_id,)).fetchone()
    if row is None:
        return None
    values = {k: v for k, v in row.items() if k in NAMES}
    for name in ("exclude_prefixes", "limit_ou_ids"):
        values[name] = "\n".join(values[name])
    values["auto_remove_suspended"] = "on" if row["auto_remove_suspended"] else ""
    values["auto_badge"] = "on" if row["auto_badge"] else ""
    values["sync_interval_seconds"] = row["sync_interval_seconds"] or ""
    values["aws_rates"] = rate_override_text(row["aws_rates"])
    return values


def show(request: Request, org_id: str | None, values: dict[str, Any], **extra: Any) -> Response:
    extra.setdefault("reasons", {})
    extra.setdefault("general", [])
    return render(
        request,
        "org_form.html",
        fields=FIELDS,
        org_id=org_id,
        values=values,
        status_code=extra.pop("status_code", 200),
        **extra,
    )


def submit(request: Request, org_id: str | None) -> Response:
    form = request.state.form
    house = request.app.state.house
    try:
        body = request_from(form, org_id)
    except FieldError as error:  # refused here: it has no request value to send
        refused = {error.field: [str(error)]}
        return show(request, org_id, filled(form), reasons=refused, status_code=422)
    try:
        registering.submit(house, body, By(request.state.actor, "console"))
        verdict = registering.wait_verdict(house, body["request_id"], VERDICT_TIMEOUT, body)
    except (ServiceUnavailable, UserError) as error:
        return show(request, org_id, filled(form), general=[str(error)], status_code=503)
    if verdict.accepted:
        return render(request, "verdict.html", verdict=verdict)
    reasons: dict[str, list[str]] = {}
    general = []
    for problem in verdict.reasons:
        if problem.field in NAMES:
            reasons.setdefault(problem.field, []).append(problem.message)
        else:
            general.append(f"{problem.field}: {problem.message}")
    return show(request, org_id, filled(form), reasons=reasons, general=general, status_code=422)


@page
def new_org(request: Request) -> Response:
    if request.method == "POST":
        return submit(request, None)
    return show(request, None, {"org_session_duration": "1h", "member_session_duration": "1h"})


@page
def edit_org(request: Request) -> Response:
    org_id = request.path_params["org_id"]
    with request.app.state.house.connect() as conn:
        values = current(conn, org_id)
    status = 404 if values is None else roles.org_status(request, org_id)
    if status or values is None:
        message = "editing needs the admin role" if status == 403 else f"no organization {org_id}"
        return render(request, "error.html", status, message=message)
    if request.method == "POST":
        return submit(request, org_id)
    return show(request, org_id, values)


def routes() -> list[Route]:
    return [
        Route("/orgs/new", new_org, methods=["GET", "POST"]),
        Route("/orgs/{org_id}/edit", edit_org, methods=["GET", "POST"]),
    ]
