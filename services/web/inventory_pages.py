"""The read pages: organizations, the cloud listing, one account (and its badges by hand)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orgsync.pipelines import badges, numbers
from orgsync.pipelines.assume_role_advice import likely_causes
from orgsync.pipelines.audit import By
from orgsync.pipelines.sql import load
from orgsync.services.read_models import inventory
from orgsync.services.web import listing, operator_pages, roles
from orgsync.services.web.auth import page
from orgsync.services.web.render import render

SQL = load("orgsync.services.web")
MAX_PAGE = 10**9  # times MAX_PER_PAGE, an OFFSET PostgreSQL's bigint holds


@page
def orgs(request: Request) -> Response:
    with request.app.state.house.connect() as conn:
        rows = inventory.organizations(conn, roles.scope(request))
    return render(request, "orgs.html", orgs=rows)


def parse_listing(conn: Any, request: Request) -> tuple[listing.Query, list[str]]:
    """The listing's query string as a Query within the actor's scope, and what in it could
    not be used."""
    args = request.query_params
    problems = []
    org_id = None
    if org := args.get("org", "").strip():
        org_id = roles.visible_org(conn, request, org)
        if org_id is None:
            problems.append(f"no organization {org!r}")
    status = args.get("status", "").strip() or None
    if status is not None and status not in listing.STATUSES:
        problems.append(f"status must be one of {', '.join(listing.STATUSES)}")
        status = None
    badge = None
    if text := args.get("badge", "").strip():
        key, sep, value = text.partition("=")
        if sep:
            badge = (key, value)
        else:
            problems.append("badge takes KEY=VALUE")
    sort = args.get("sort", "name")
    number = args.get("page", "1")
    per_page = args.get("per_page", str(listing.PER_PAGE))
    query = listing.Query(
        org_id=org_id or ("-" if org else None),  # an unknown organization matches nothing
        status=status,
        badge=badge,
        name=args.get("name", "").strip() or None,
        include_removed=args.get("include_removed") in ("1", "on", "true"),
        sort=sort if sort in listing.SORTS else "name",
        descending=args.get("order") == "desc",
        # out of bounds is the first page of the usual size: OFFSET must fit a bigint
        page=numbers.whole(number, 1, MAX_PAGE) or 1,
        per_page=min(numbers.whole(per_page, 1) or listing.PER_PAGE, listing.MAX_PER_PAGE),
        scope=roles.scope(request),
    )
    return query, problems


@page
def accounts(request: Request) -> Response:
    args = request.query_params
    with request.app.state.house.connect() as conn:
        query, problems = parse_listing(conn, request)
        if args.get("excluded"):
            rows = inventory.excluded(conn, query.org_id, query.scope)
            total = len(rows)
        else:
            rows, total = listing.page(conn, query)
        org_list = conn.execute(SQL["organization_choices"], {"scope": query.scope}).fetchall()
    kept = {k: v for k, v in args.items() if k not in ("page", "sort", "order") and v}

    def link(**change: Any) -> str:
        return "/accounts?" + urlencode({**kept, **{k: v for k, v in change.items() if v}})

    pages = max(1, -(-total // query.per_page))
    return render(
        request,
        "excluded.html" if args.get("excluded") else "accounts.html",
        rows=rows,
        total=total,
        query=query,
        args=args,
        problems=problems,
        orgs=org_list,
        statuses=listing.STATUSES,
        sorts=listing.SORTS,
        pages=pages,
        link=link,
    )


@page
def account(request: Request) -> Response:
    return show_account(request, request.path_params["account_id"])


def show_account(
    request: Request, account_id: str, refusals: list[str] | None = None, done: str = ""
) -> Response:
    with request.app.state.house.connect() as conn:
        params = {"account_id": account_id, "scope": roles.scope(request)}
        row = conn.execute(SQL["account_page"], params).fetchone()
        if row is None:
            return render(request, "error.html", 404, message=f"no account {account_id}")
        badge_rows = inventory.badges(conn, account_id)
        history = inventory.badge_history(conn, account_id)
    causes = likely_causes(
        row["failure_code"] or "", member=True, management_account=bool(row["management_account"])
    )
    return render(
        request,
        "account.html",
        a=row,
        causes=causes if row["failure_code"] else [],
        managed=bool(row["org_id"]),
        badges=badge_rows,
        history=history,
        is_reserved=badges.is_reserved,
        refusals=refusals or [],
        done=done,
    )


@page
def edit_badges(request: Request) -> Response:
    """A standalone account's badges by hand, with the CLI's rules (pipelines.badges.edit)."""
    account_id = request.path_params["account_id"]
    form = request.state.form
    key = str(form.get("key", ""))
    put, delete = {}, []
    if form.get("action") == "delete":
        delete.append(key)
    else:
        put[key] = str(form.get("value", ""))
    with request.app.state.house.connect() as conn:
        if status := roles.account_status(request, conn, account_id):
            return render(request, "error.html", status, message=refusal(status, account_id))
        try:
            changes = badges.edit(conn, account_id, put, delete, By(request.state.actor, "console"))
        except badges.EditRefused as refused:
            return show_account(request, account_id, refused.reasons)
    if changes is None:
        return render(request, "error.html", 404, message=f"no account {account_id}")
    return show_account(request, account_id, done=f"{len(changes)} badge change(s) saved")


def refusal(status: int, account_id: str) -> str:
    return f"no account {account_id}" if status == 404 else "badge edits need the operator role"


def routes() -> list[Route]:
    return [
        Route("/orgs", orgs),
        Route("/accounts", accounts),
        Route("/accounts/{account_id}", account),
        Route("/accounts/{account_id}/badges", edit_badges, methods=["POST"]),
        *operator_pages.routes(),
    ]
