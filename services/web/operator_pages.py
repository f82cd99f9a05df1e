"""The operator's pages: failed validations and their retry, the pipeline, a sync started now."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from orgsync.pipelines.account_state import StageMark
from orgsync.pipelines.orgs import resolve_org_id
from orgsync.pipelines.resync import FULL, MODES
from orgsync.pipelines.sql import load
from orgsync.services.adapters import dead_letters, queues
from orgsync.services.errors import ServiceUnavailable, UserError
from orgsync.services.read_models import dispatch, inventory
from orgsync.services.use_cases import redrive, syncs
from orgsync.services.web.auth import page
from orgsync.services.web.chart import line_chart
from orgsync.services.web.pipeline_history import PipelineHistory
from orgsync.services.web.render import render

SQL = load("orgsync.services.web")

STAGES = tuple(s.value for s in StageMark)


@page
def failed(request: Request) -> Response:
    org = request.query_params.get("org", "").strip()
    with request.app.state.house.connect() as conn:
        org_id = resolve_org_id(conn, org) if org else None
        rows = inventory.failures(conn, org_id if org_id else (org or None))
        org_list = conn.execute(SQL["organization_choices"]).fetchall()
    try:
        dead = dead_letters.dead_letter_count(request.app.state.settings.broker_url)
    except ServiceUnavailable as error:
        dead, problem = None, str(error)
    else:
        problem = ""
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
    try:
        result = redrive.retry_failed(
            request.app.state.house,
            scope["org"],
            scope["account"],
            scope["code"],
            dry_run=not confirmed,
        )
    except (ServiceUnavailable, UserError) as error:
        return render(request, "error.html", 503, message=str(error))
    return render(request, "retry.html", result=result, scope=scope, confirmed=confirmed)


RECENT_EVENTS = 20


def pipeline_state(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    current = []
    with request.app.state.house.connect() as conn:
        for row in conn.execute(SQL["current_syncs"]).fetchall():
            # the same per-stage counts as `orgsync sync --wait` follows
            progress = inventory.sync_progress(conn, row["sync_id"]) if row["sync_id"] else {}
            sync = progress.get("sync") or {}
            current.append({**row, "complete": sync.get("complete"), **progress})
        last = conn.execute(SQL["last_syncs"]).fetchall()
        waiting = dispatch.shares(conn)
        feeds = [o for o in inventory.organizations(conn) if o["feed"]]
        events = inventory.change_events(conn, None, RECENT_EVENTS)
    try:
        depths = queues.depths(settings.broker_url, settings.rabbitmq_management_url)
        problem = ""
    except ServiceUnavailable as error:
        depths, problem = [], str(error)
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
        **charts(request.app.state.history),
    }


def charts(history: PipelineHistory) -> dict[str, Markup]:
    depth, rate = history.series()
    return {
        "depth_chart": Markup(line_chart(depth, title="Queue depth, last hour")),
        "rate_chart": Markup(line_chart(rate, title="Accounts reconciled per second, last hour")),
    }


@page
def pipeline(request: Request) -> Response:
    fragment = request.query_params.get("fragment") == "1"
    name = "_pipeline.html" if fragment else "pipeline.html"
    return render(request, name, **pipeline_state(request))


@page
def sync_now(request: Request) -> Response:
    with request.app.state.house.connect() as conn:
        org_id = resolve_org_id(conn, request.path_params["org_id"])
    if org_id is None:
        return render(request, "error.html", 404, message="no such organization")
    mode = request.state.form.get("mode", FULL)
    if mode not in MODES:
        return render(request, "error.html", 400, message="a sync is full or incremental")
    try:
        syncs.sync(request.app.state.house, org_id, mode=str(mode))
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
