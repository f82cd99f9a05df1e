"""What the API starts on one organization: `POST /api/orgs/{org}/sync` and
`POST /api/orgs/{org}/retry-failed`, the same use cases as `orgsync sync` and
`orgsync retry-failed` (services/use_cases/syncs.py, redrive.py), each answering 202."""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orgsync.pipelines import numbers
from orgsync.pipelines.audit import By
from orgsync.pipelines.resync import FULL, MODES
from orgsync.services.errors import ServiceUnavailable, UserError
from orgsync.services.use_cases import redrive, syncs
from orgsync.services.web import roles
from orgsync.services.web.api import as_json, error
from orgsync.services.web.auth import api

MAX_REF = 200  # an organization id or nickname, an account id, an AWS error code


class Refused(Exception):
    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


def _body(request: Request, shape: str) -> dict[str, Any]:
    """The JSON object posted, {} for no body."""
    if not request.state.body.strip():
        return {}
    try:
        body = numbers.loads(request.state.body)
    except ValueError:
        raise Refused(f"the body must be JSON: {shape}") from None
    if not isinstance(body, dict):
        raise Refused(f"the body must be a JSON object: {shape}")
    return body


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or not 0 < len(value) <= MAX_REF):
        raise Refused(f"{name} must be text of 1 to {MAX_REF} characters")
    return value


def _org_id(request: Request) -> str:
    """The organization in the path: 404 when unknown or out of the actor's scope, 403 when
    the actor sees it without the operator role."""
    ref = request.path_params["org"]
    with request.app.state.house.connect() as conn:
        org_id = roles.visible_org(conn, request, ref[:MAX_REF])
    if org_id is None:
        raise Refused(f"no organization {ref[:MAX_REF]!r}", 404)
    if roles.org_status(request, org_id):
        raise Refused("this needs the operator role on the organization", 403)
    return org_id


def answered(action: Any) -> Any:
    """An API action whose Refused, ServiceUnavailable and UserError become JSON errors."""

    @api
    def endpoint(request: Request) -> Response:
        try:
            return action(request)  # type: ignore[no-any-return]
        except Refused as refused:
            return error(str(refused), refused.status_code)
        except ServiceUnavailable as unavailable:
            return error(str(unavailable), 503)
        except UserError as bad:
            return error(str(bad), 400)

    endpoint.__name__ = action.__name__
    return endpoint


def sync(request: Request) -> Response:
    """`{"mode": "full" (the default) or "incremental"}` -> 202 `{"sync_id", "org_id", "mode"}`."""
    body = _body(request, '{"mode": "full" or "incremental"}')
    mode = body.get("mode", FULL)
    if mode not in MODES:
        raise Refused(f"mode must be one of {', '.join(MODES)}")
    org_id = _org_id(request)
    by = By(request.state.actor, "api")
    sync_id = syncs.sync(request.app.state.house, org_id, trigger="api", mode=mode, by=by)
    return as_json({"sync_id": sync_id, "org_id": org_id, "mode": mode}, 202)


def retry_failed(request: Request) -> Response:
    """`{"account"?, "code"?}` (none: every failed account of the organization) -> 202 with
    `queued`, the count, and the rest of `orgsync retry-failed --json`."""
    body = _body(request, '{"account": ..., "code": ...}, both optional')
    account, code = _text(body, "account"), _text(body, "code")
    org_id = _org_id(request)
    by = By(request.state.actor, "api")
    result = redrive.retry_failed(request.app.state.house, org_id, account, code, by=by)
    return as_json({"queued": result.queued, **dataclasses.asdict(result)}, 202)


def routes() -> list[Route]:
    return [
        Route("/api/orgs/{org}/sync", answered(sync), methods=["POST"]),
        Route("/api/orgs/{org}/retry-failed", answered(retry_failed), methods=["POST"]),
    ]
