"""The audit trail in the console (/audit) and the API (GET /api/audit), the same rows as
`orgsync audit --json`, newest first, a page at a time: `?before=<audit_id>` pages back, and
the API's `Link: <...>; rel="next"` header gives the next page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orgsync.pipelines import audit, numbers
from orgsync.pipelines.access import Role
from orgsync.pipelines.sql import load
from orgsync.services.web import roles
from orgsync.services.web.api import MAX_PAGE, BadQuery, Page, read
from orgsync.services.web.auth import page
from orgsync.services.web.render import render

SQL = load("orgsync.services.web")
PER_PAGE = 100
LARGEST_ID = 2**63 - 1


def _query(conn: Any, request: Request) -> tuple[str | None, int, int | None]:
    """(organization, page size, audit id to page back from); BadQuery says what is wrong."""
    args = request.query_params
    org_id = None
    if ref := args.get("org", "").strip():
        org_id = roles.visible_org(conn, request, ref)
        if org_id is None:
            raise BadQuery(f"no organization {ref[:200]!r}", 404)
    limit = numbers.whole(args.get("limit", str(PER_PAGE)), 1, MAX_PAGE)
    if limit is None:
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_PAGE}")
    before = None
    if "before" in args:
        before = numbers.whole(args["before"], 1, LARGEST_ID)
        if before is None:
            raise BadQuery("before must be an audit id (a whole number of at least 1)")
    return org_id, limit, before


def _rows(conn: Any, request: Request) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
    """A page of the rows the actor administers (an administrator of some organizations sees
    theirs, not the rows of no organization), and the next page's query (None: the last)."""
    args = request.query_params
    org_id, limit, before = _query(conn, request)
    scope = request.state.actor.org_ids(Role.ADMIN)
    rows = audit.trail(conn, org_id, limit + 1, before, scope)  # one more: a next page?
    if len(rows) <= limit:
        return rows, None
    following = {**{k: v for k, v in args.items() if k != "before"}}
    return rows[:limit], {**following, "before": str(rows[limit - 1]["audit_id"])}


def listing(conn: Any, request: Request) -> Any:
    """`GET /api/audit?org=&limit=&before=`."""
    rows, following = _rows(conn, request)
    if following is None:
        return rows
    return Page(rows, {"link": f'</api/audit?{urlencode(following)}>; rel="next"'})


@page
def audit_page(request: Request) -> Response:
    args = request.query_params
    try:
        with request.app.state.house.connect() as conn:
            rows, following = _rows(conn, request)
            scope = {"scope": roles.scope(request, Role.ADMIN)}
            orgs = conn.execute(SQL["organization_choices"], scope).fetchall()
    except BadQuery as bad:
        return render(request, "error.html", bad.status_code, message=str(bad))
    return render(
        request,
        "audit.html",
        rows=rows,
        orgs=orgs,
        org=args.get("org", ""),
        next_page=f"/audit?{urlencode(following)}" if following else "",
    )


def routes() -> list[Route]:
    return [Route("/audit", audit_page), Route("/api/audit", read(listing))]
