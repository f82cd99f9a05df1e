"""The operator's pages: failed validations and their retry, the pipeline, a sync started now."""

from __future__ import annotations

import time
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from orgsync.pipelines.account_state import StageMark
from orgsync.pipelines.audit import By
from orgsync.pipelines.resync import FULL, MODES
from orgsync.pipelines.sql import load
from orgsync.services.adapters import dead_letters, queues
from orgsync.services.errors import ServiceUnavailable, UserError
from orgsync.services.read_models import dispatch, inventory
from orgsync.services.use_cases import redrive, syncs
from orgsync.services.web import roles
from orgsync.services.web.auth import page
from orgsync.services.web.chart import line_chart
from orgsync.services.web.pipeline_history import SPAN_S, PipelineHistory
from orgsync.services.web.render import render

SQL = load("orgsync.services.web")

STAGES = tuple(s.value for s in StageMark)
RATE_TITLE = "Accounts reconciled per second, last hour"


@page
def failed(request: Request) -> Response:
    org = request.query_params.get("org", "").strip()
    scope = roles.scope(request)
    with request.app.state.house.connect() as conn:
        org_id = roles.visible_org(conn, request, org) if org else None
        rows = inventory.failures(conn, org_id if org_id else (org or None), scope=scope)
        org_list = conn.execute(SQL["organization_choices"], {"scope": scope}).fetchall()
    dead, problem = None, ""
    try:  # dead letters are every organization's: counted for those who see them all
        if scope is None:
            dead = dead_letters.dead_letter_count(request.app.state.settings.broker_url)
    except ServiceUnavailable as error:
        problem = str(error)
    codes = sorted({row["code"] for row in rows})
    return render(
        request, "failed.html", rows=rows, orgs=org_list, codes=codes, dead=dead, problem=problem
    )


@page
def retry(request: Request) -> Response:
    """The same path as `orgsync retry-failed`: a dry run shows the count, the confirmation
    does it."""
    form = request.state.form
    scope = {name: (str(form.get(name, "")).strip() or None) for name in ("org", "account", "code")}
    confirmed = form.get("confirm") == "yes"
    with request.app.state.house.connect() as conn:
        org_id = roles.visible_org(conn, request, scope["org"]) if scope["org"] else None
        if scope["org"] and org_id is None:
            status = 404
        elif scope["account"]:  # one account: the operator role on its organization
            status = roles.account_status(request, conn, scope["account"][:64])
            status = status or (roles.org_status(request, org_id) if org_id else 0)
        else:  # an organization's failures, or (no org) every organization's
            status = roles.org_status(request, org_id)
    if status:
        message = "no such organization or account" if status == 404 else NEEDS_ORG
        return render(request, "error.html", status, message=message)
    scope["org"] = org_id or scope["org"]
    try:
        result = redrive.retry_failed(
            request.app.state.house,
            scope["org"],
            scope["account"],
            scope["code"],
            dry_run=not confirmed,
            by=By(request.state.actor, "console"),
        )
    except (ServiceUnavailable, UserError) as error:
        return render(request, "error.html", 503, message=str(error))
    return render(request, "retry.html", result=result, scope=scope, confirmed=confirmed)


NEEDS_ORG = "a retry needs the operator role on the organization chosen (or on all to retry all)"
RECENT_EVENTS = 20


def pipeline_state(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    scope = roles.scope(request)
    current = []
    with request.app.state.house.connect() as conn:
        for row in conn.execute(SQL["current_syncs"], {"scope": scope}).fetchall():
            # the same per-stage counts as `orgsync sync --wait` follows
            progress = inventory.sync_progress(conn, row["sync_id"]) if row["sync_id"] else {}
            sync = progress.get("sync") or {}
            current.append({**row, "complete": sync.get("complete"), **progress})
        last = conn.execute(SQL["last_syncs"], {"scope": scope}).fetchall()
        waiting = dispatch.shares(conn, scope)
        feeds = [o for o in inventory.organizations(conn, scope) if o["feed"]]
        events = inventory.change_events(conn, None, RECENT_EVENTS, scope)
        drawn = charts(request.app.state.history) if scope is None else scoped_charts(conn, scope)
    depths, problem = [], ""
    try:  # RabbitMQ's queues hold every organization's work: shown to those who see them all
        if scope is None:
            depths = queues.depths(settings.broker_url, settings.rabbitmq_management_url)
    except ServiceUnavailable as error:
        problem = str(error)
    queues.add_outbox(depths, waiting)
    seen = {stage for row in current for stage in row.get("stages", {})}
    stages = [*STAGES, *sorted(seen - set(STAGES))]
    return {
        "current": current,
        "last": last,
        "queues": depths,
        "waiting": waiting,
        "problem": problem,
        "stages": stages,
        "feeds": feeds,
        "events": events,
        **drawn,
    }


def charts(history: PipelineHistory) -> dict[str, Markup]:
    depth, rate = history.series()
    return {
        "depth_chart": Markup(line_chart(depth, title="Queue depth, last hour")),
        "rate_chart": Markup(line_chart(rate, title=RATE_TITLE)),
    }


def scoped_charts(conn: Any, scope: list[str]) -> dict[str, Markup]:
    """The charts of a user who sees only some organizations: their throughput per minute from
    PostgreSQL; queue depth is every organization's, so it is not drawn."""
    rows = conn.execute(SQL["reconciled_per_minute"], {"span": SPAN_S, "scope": scope})
    now = time.time()
    rate = [(now - row["minute"].timestamp() - 60, row["n"] / 60.0) for row in rows]
    return {
        "depth_chart": Markup(""),
        "rate_chart": Markup(line_chart({"accounts/s": rate}, title=RATE_TITLE)),
    }


@page
def pipeline(request: Request) -> Response:
    fragment = request.query_params.get("fragment") == "1"
    name = "_pipeline.html" if fragment else "pipeline.html"
    return render(request, name, **pipeline_state(request))


@page
def sync_now(request: Request) -> Response:
    with request.app.state.house.connect() as conn:
        org_id = roles.visible_org(conn, request, request.path_params["org_id"])
    if status := 404 if org_id is None else roles.org_status(request, org_id):
        message = "no such organization" if status == 404 else "a sync needs the operator role"
        return render(request, "error.html", status, message=message)
    assert org_id is not None
    mode = request.state.form.get("mode", FULL)
    if mode not in MODES:
        return render(request, "error.html", 400, message="a sync is full or incremental")
    try:
        by = By(request.state.actor, "console")
        syncs.sync(request.app.state.house, org_id, mode=str(mode), by=by)
    except (ServiceUnavailable, UserError) as error:
        return render(request, "error.html", 503, message=str(error))
    return RedirectResponse("/pipeline", status_code=303)


def routes() -> list[Route]:
    return [
        Route("/failed", failed),
        Route("/failed/retry", retry, methods=["POST"]),
        Route("/pipeline", pipeline),
        Route("/orgs/{org_id}/sync", sync_now, methods=["POST"]),
    ]
