"""Webhooks for an administrator: the console's /webhooks page and the API under
/api/webhooks, the same use cases as `orgsync webhooks` (services/use_cases/webhooks.py).

A webhook added from the console or the API without a secret gets a new one, shown once."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from orgsync.pipelines import numbers
from orgsync.pipelines import webhooks as rules
from orgsync.pipelines.audit import By
from orgsync.pipelines.orgs import resolve_org_id
from orgsync.pipelines.outbound import EVENT_TYPES
from orgsync.pipelines.sql import load
from orgsync.services.errors import UserError
from orgsync.services.use_cases import webhooks
from orgsync.services.web.api import as_json, error
from orgsync.services.web.auth import api, page
from orgsync.services.web.render import render

SQL = load("orgsync.services.web")
MAX_DELIVERIES = 10_000


def create(conn: Any, keyring: Any, fields: dict[str, Any], by: By) -> dict[str, str]:
    """A webhook from a form or a JSON body: its id and, when none was given, its new secret."""
    url, secret = str(fields.get("url") or "").strip(), fields.get("secret") or None
    org_ref = str(fields.get("org") or "").strip()
    org_id = resolve_org_id(conn, org_ref) if org_ref else None
    if org_ref and org_id is None:
        raise UserError(f"no organization {org_ref!r}")
    types = fields.get("types")
    if isinstance(types, list):
        types = ",".join(map(str, types))
    try:
        chosen = rules.parse_types(types)
    except ValueError as bad:
        raise UserError(str(bad)) from bad
    made = secret or rules.new_secret()
    created = {"webhook_id": webhooks.add(conn, keyring, url, str(made), org_id, chosen, by)}
    return created if secret else {**created, "secret": made}


# ---- the console ---------------------------------------------------------------------------


def show(request: Request, status_code: int = 200, **extra: Any) -> Response:
    house = request.app.state.house
    with house.connect() as conn:
        hooks = webhooks.listing(conn)
        orgs = conn.execute(SQL["organization_choices"], {"scope": None}).fetchall()
    context = {"hooks": hooks, "orgs": orgs, "types": EVENT_TYPES, "problem": "", "created": None}
    context.update(extra)
    return render(request, "webhooks.html", status_code, **context)


@page
def listing(request: Request) -> Response:
    return show(request)


@page
def add(request: Request) -> Response:
    form = request.state.form
    fields = {"url": form.get("url"), "org": form.get("org"), "types": form.getlist("types")}
    house = request.app.state.house
    try:
        with house.connect() as conn:
            created = create(conn, house.keyring, fields, By(request.state.actor, "console"))
    except UserError as bad:
        return show(request, 400, problem=str(bad))
    return show(request, 201, created=created)


@page
def remove(request: Request) -> Response:
    with request.app.state.house.connect() as conn:
        webhooks.remove(conn, request.path_params["webhook_id"], By(request.state.actor, "console"))
    return RedirectResponse("/webhooks", status_code=303)


@page
def deliveries_page(request: Request) -> Response:
    webhook_id = request.path_params["webhook_id"]
    with request.app.state.house.connect() as conn:
        rows = webhooks.deliveries(conn, webhook_id)
    if rows is None:
        return render(request, "error.html", 404, message="no such webhook")
    return render(request, "deliveries.html", webhook_id=webhook_id, rows=rows)


@page
def redeliver_page(request: Request) -> Response:
    delivery_id = numbers.whole(request.path_params["delivery_id"], 1, 2**63 - 1)
    by = By(request.state.actor, "console")
    with request.app.state.house.connect() as conn:
        webhook_id = webhooks.redeliver(conn, delivery_id, by) if delivery_id else None
    if webhook_id is None:
        return render(request, "error.html", 404, message="no such delivery")
    return RedirectResponse(f"/webhooks/{webhook_id}/deliveries", status_code=303)


# ---- the API -------------------------------------------------------------------------------


@api
def api_list(request: Request) -> Response:
    with request.app.state.house.connect() as conn:
        return as_json(webhooks.listing(conn))


@api
def api_add(request: Request) -> Response:
    """`{"url", "secret"?, "org"?, "types"?}` → `{"webhook_id", "secret"?}`."""
    try:
        body = json.loads(request.state.body or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return error('the body must be a JSON object: {"url": ..., "secret": "whsec_..."}', 400)
    house = request.app.state.house
    try:
        with house.connect() as conn:
            return as_json(create(conn, house.keyring, body, By(request.state.actor, "api")))
    except UserError as bad:
        return error(str(bad), 400)


@api
def api_remove(request: Request) -> Response:
    with request.app.state.house.connect() as conn:
        if not webhooks.remove(
            conn, request.path_params["webhook_id"], By(request.state.actor, "api")
        ):
            return error("no such webhook", 404)
    return as_json({"removed": request.path_params["webhook_id"]})


@api
def api_deliveries(request: Request) -> Response:
    state = request.query_params.get("state") or None
    if state is not None and state not in webhooks.DELIVERY_STATES:
        return error(f"state must be one of {', '.join(webhooks.DELIVERY_STATES)}", 400)
    limit = numbers.whole(request.query_params.get("limit", "100"), 1, MAX_DELIVERIES)
    if limit is None:
        return error(f"limit must be a whole number from 1 to {MAX_DELIVERIES}", 400)
    with request.app.state.house.connect() as conn:
        rows = webhooks.deliveries(conn, request.path_params["webhook_id"], state, limit)
    return error("no such webhook", 404) if rows is None else as_json(rows)


@api
def api_redeliver(request: Request) -> Response:
    delivery_id = numbers.whole(request.path_params["delivery_id"], 1, 2**63 - 1)
    by = By(request.state.actor, "api")
    with request.app.state.house.connect() as conn:
        webhook_id = webhooks.redeliver(conn, delivery_id, by) if delivery_id else None
    if webhook_id is None:
        return error("no such delivery of a webhook still in place", 404)
    return as_json({"delivery_id": delivery_id, "webhook_id": webhook_id, "state": "pending"})


def routes() -> list[Route]:
    return [
        Route("/webhooks", listing),
        Route("/webhooks", add, methods=["POST"]),
        Route("/webhooks/{webhook_id}/remove", remove, methods=["POST"]),
        Route("/webhooks/{webhook_id}/deliveries", deliveries_page),
        Route("/deliveries/{delivery_id}/redeliver", redeliver_page, methods=["POST"]),
        Route("/api/webhooks", api_list),
        Route("/api/webhooks", api_add, methods=["POST"]),
        Route("/api/webhooks/{webhook_id}", api_remove, methods=["DELETE"]),
        Route("/api/webhooks/{webhook_id}/deliveries", api_deliveries),
        Route("/api/deliveries/{delivery_id}/redeliver", api_redeliver, methods=["POST"]),
    ]
