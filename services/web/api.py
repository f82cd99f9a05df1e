"""The HTTP API under /api/: the CLI's `--json` reads, the same JSON, registrations and syncs.

Every route but /api/openapi.json takes `Authorization: Bearer <token>`: ORGSYNC_API_TOKEN or a
named token (`orgsync tokens create`), whose role services/web/roles.py checks. Reads show only
the organizations the token sees; one out of its scope answers 404, as one that does not exist.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orgsync.pipelines import numbers
from orgsync.pipelines.audit import By
from orgsync.pipelines.request_rules import field_problems
from orgsync.pipelines.resync import FULL, MODES
from orgsync.services.commands.inventory import MAX_EVENTS, MAX_REGISTRATIONS
from orgsync.services.commands.output import dumps
from orgsync.services.errors import ServiceUnavailable, UserError
from orgsync.services.read_models import dispatch, inventory
from orgsync.services.use_cases import registering, syncs
from orgsync.services.web import openapi, roles
from orgsync.services.web.auth import api
from orgsync.services.web.listing import STATUSES

MAX_WAIT = 300.0


def as_json(document: Any, status_code: int = 200) -> Response:
    """The JSON `--json` prints: the CLI's own serializer, byte for byte."""
    return Response(dumps(document) + "\n", status_code, media_type="application/json")


def error(message: str, status_code: int) -> Response:
    return JSONResponse({"error": message}, status_code=status_code)


class BadQuery(Exception):
    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


def _org(conn: Any, request: Request) -> str | None:
    ref = request.query_params.get("org", "").strip()
    if not ref:
        return None
    org_id = roles.visible_org(conn, request, ref)
    if org_id is None:
        raise BadQuery(f"no organization {ref!r}", 404)
    return org_id


def _flag(request: Request, name: str) -> bool:
    text = request.query_params.get(name, "").lower()
    if text not in FLAG_WORDS:
        raise BadQuery(f"{name} must be true or false")
    return FLAG_WORDS[text]


FLAG_WORDS = {
    "": False,
    "0": False,
    "false": False,
    "no": False,
    "1": True,
    "true": True,
    "yes": True,
}
DEFAULT_PAGE = 1000
MAX_PAGE = 10000


@dataclass(frozen=True)
class Page:
    """A page of a listing and the headers that lead to the next."""

    rows: list[dict[str, Any]]
    headers: dict[str, str]


def read(query: Any) -> Any:
    """A read route from `query(conn, request)`; BadQuery becomes its status."""

    @api
    def endpoint(request: Request) -> Response:
        try:
            with request.app.state.house.connect() as conn:
                found = query(conn, request)
            if isinstance(found, Page):
                answer = as_json(found.rows)
                answer.headers.update(found.headers)
                return answer
            return as_json(found)
        except BadQuery as bad:
            return error(str(bad), bad.status_code)

    return endpoint


def orgs(conn: Any, request: Request) -> Any:
    return inventory.organizations(conn, roles.scope(request))


def accounts(conn: Any, request: Request) -> Any:
    """`orgsync accounts [--org] [--status] [--badge K=V] [--include-removed] [--excluded]`."""
    org_id = _org(conn, request)
    if _flag(request, "excluded"):
        return inventory.excluded(conn, org_id, roles.scope(request))
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadQuery(f"status must be one of {', '.join(STATUSES)}")
    badge = None
    if text := request.query_params.get("badge"):
        key, sep, value = text.partition("=")
        if not sep:
            raise BadQuery("badge takes KEY=VALUE")
        badge = (key, value)
    limit = _number(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    offset = _number(request, "offset", 0, 0, None)
    rows = inventory.accounts(
        conn,
        org_id=org_id,
        status=status,
        badge=badge,
        include_removed=_flag(request, "include_removed"),
        limit=limit + 1,  # one more: is there a next page?
        offset=offset,
        scope=roles.scope(request),
    )
    if len(rows) <= limit:
        return rows
    following = request.url.include_query_params(limit=limit, offset=offset + limit)
    return Page(rows[:limit], {"link": f'<{following.path}?{following.query}>; rel="next"'})


def _number(request: Request, name: str, default: int, least: int, most: int | None) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    value = numbers.whole(text, least, most)
    if value is None:
        bounds = f"from {least} to {most}" if most is not None else f"of at least {least}"
        raise BadQuery(f"{name} must be a whole number {bounds}")
    return value


def failed(conn: Any, request: Request) -> Any:
    return inventory.failures(conn, _org(conn, request), scope=roles.scope(request))


def events(conn: Any, request: Request) -> Any:
    """`orgsync events [--org] [--limit] --json`."""
    limit = _number(request, "limit", 100, 1, MAX_EVENTS)
    return inventory.change_events(conn, _org(conn, request), limit, roles.scope(request))


def registrations(conn: Any, request: Request) -> Any:
    limit = numbers.whole(request.query_params.get("limit", "50"), 1, MAX_REGISTRATIONS)
    if limit is None:
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_REGISTRATIONS}")
    return inventory.registrations(conn, limit, roles.scope(request))


def sync_list(conn: Any, request: Request) -> Any:
    """`orgsync syncs [--org] [--limit]`."""
    limit = numbers.whole(request.query_params.get("limit", "20"), 1, MAX_REGISTRATIONS)
    if limit is None:
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_REGISTRATIONS}")
    return inventory.syncs(conn, _org(conn, request), limit, roles.scope(request))


@api
def start_sync(request: Request) -> Response:
    """Start a sync, as `orgsync sync ORG [--incremental]` does: the body is `{"org": ID or
    nickname, "mode": "full" (the default) or "incremental"}`; answers 202 with its id."""
    try:
        body = numbers.loads(request.state.body or b"null")
    except ValueError:
        return error('the body must be JSON: {"org": ..., "mode": "full" or "incremental"}', 400)
    if not isinstance(body, dict) or not isinstance(body.get("org"), str):
        return error('the body must be a JSON object naming the organization: {"org": ...}', 400)
    mode = body.get("mode", FULL)
    if mode not in MODES:
        return error(f"mode must be one of {', '.join(MODES)}", 400)
    house = request.app.state.house
    try:
        with house.connect() as conn:
            org_id = roles.visible_org(conn, request, body["org"])
        if org_id is None:
            return error(f"no organization {body['org'][:200]!r}", 404)
        if roles.org_status(request, org_id):
            return error("a sync needs the operator role on the organization", 403)
        by = By(request.state.actor, "api")
        sync_id = syncs.sync(house, org_id, trigger="api", mode=mode, by=by)
    except ServiceUnavailable as unavailable:
        return error(str(unavailable), 503)
    return as_json({"sync_id": sync_id, "org_id": org_id, "mode": mode}, 202)


def account_badges(conn: Any, request: Request) -> Any:
    account_id = request.path_params["account_id"]
    if status := roles.account_status(request, conn, account_id):
        raise BadQuery(f"no account {account_id}" if status == 404 else "no access", status)
    read = inventory.badge_history if _flag(request, "history") else inventory.badges
    return read(conn, account_id)


@api
def queue_depths(request: Request) -> Response:
    try:
        return as_json(dispatch.queue_depths(request.app.state.house)[0])
    except ServiceUnavailable as unavailable:
        return error(str(unavailable), 503)


@api
def register(request: Request) -> Response:
    """Publish a registration request (as `orgsync register` does) and answer its verdict;
    `?wait=false` answers 202 once it is queued."""
    try:
        body = numbers.loads(request.state.body or b"null")
    except numbers.NotFinite as not_finite:  # Python's json reads NaN and Infinity; JSON has not
        return error(f"the body must be the registration request, as JSON: {not_finite}", 400)
    except ValueError:
        return error("the body must be the registration request, as JSON", 400)
    if not isinstance(body, dict):
        return error("the body must be a JSON object (the registration request)", 400)
    # a NaN timeout once passed min() and waited for ever
    timeout = numbers.decimal(request.query_params.get("timeout", "60"), 0, MAX_WAIT)
    if timeout is None:
        return error(f"timeout must be a number of seconds from 0 to {MAX_WAIT:g}", 400)
    # a request id that breaks its rule is no key for the verdict: the registrar files that one
    # under the message id instead, so waiting on the id given would always end in a 504
    if "request_id" in body and (wrong := field_problems("request_id", body["request_id"])):
        return error(f"request_id {'; '.join(wrong)}", 400)
    if refused := _may_register(request, body.get("org_id")):
        return refused
    body.setdefault("request_id", f"api-{uuid.uuid4()}")
    house = request.app.state.house
    try:
        registering.submit(house, body, By(request.state.actor, "api"))
        if request.query_params.get("wait", "true").lower() in ("false", "0", "no"):
            return as_json({"request_id": body["request_id"], "queued": True}, 202)
        verdict = registering.wait_verdict(house, str(body["request_id"]), timeout, body)
    except ServiceUnavailable as unavailable:
        return error(str(unavailable), 503)
    except UserError as late:  # no verdict within the timeout
        return error(str(late), 504)
    return as_json(verdict.as_json())


def _may_register(request: Request, org_id: object) -> Response | None:
    """A new organization needs admin on all; an update, admin on the organization it names."""
    if org_id is None:
        if roles.actor(request).may(roles.ADMIN):
            return None
        return error("registering needs the admin role on every organization", 403)
    if not isinstance(org_id, str):
        return None  # the registrar's verdict says what is wrong with it
    status = roles.org_status(request, org_id[:64])
    if status == 404:
        return error(f"no organization {org_id[:64]!r}", 404)
    return error("updating needs the admin role on the organization", 403) if status else None


def openapi_document(request: Request) -> Response:
    return JSONResponse(openapi.DOCUMENT)


def routes() -> list[Route]:
    return [
        Route("/api/openapi.json", openapi_document),
        Route("/api/orgs", read(orgs)),
        Route("/api/accounts", read(accounts)),
        Route("/api/accounts/{account_id}/badges", read(account_badges)),
        Route("/api/failed", read(failed)),
        Route("/api/syncs", read(sync_list)),
        Route("/api/syncs", start_sync, methods=["POST"]),
        Route("/api/events", read(events)),
        Route("/api/registrations", read(registrations)),
        Route("/api/registrations", register, methods=["POST"]),
        Route("/api/queues", queue_depths),
    ]
