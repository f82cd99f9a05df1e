"""Which role each route of the console and the API needs: one table, checked at start.

`create_app` binds every route to its row (a route missing from the table stops it starting), and
the `page` and `api` decorators (auth.py) refuse with 403 an actor the row does not admit.
Reach.ORG routes name one organization (in the path, the body or the form): their handler asks
`org_status` about it, which answers 404 for an organization out of the actor's scope (it does
not exist for them) and 403 for one they see without the role. Reach.ANY routes show only what
is in the actor's scope: their SQL takes `scope(request)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from orgsync.pipelines.access import Actor, Need, Reach, Role, scope_of
from orgsync.pipelines.orgs import resolve_org_id
from orgsync.pipelines.sql import load

SQL = load("orgsync.services.web")
VIEWER, OPERATOR, ADMIN = Role.VIEWER, Role.OPERATOR, Role.ADMIN
PUBLIC = None  # no session or token: signing in, the OpenAPI document, the static files

ROUTES: dict[tuple[str, str], Need | None] = {
    ("GET", "/"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/login/oidc"): PUBLIC,
    ("GET", "/login/oidc/callback"): PUBLIC,
    ("POST", "/logout"): Need(VIEWER, Reach.SIGNED_IN),
    ("GET", "/orgs"): Need(VIEWER),
    ("GET", "/accounts"): Need(VIEWER),
    ("GET", "/accounts/{account_id}"): Need(VIEWER, Reach.ORG),
    ("POST", "/accounts/{account_id}/badges"): Need(OPERATOR, Reach.ORG),
    ("GET", "/failed"): Need(VIEWER),
    ("POST", "/failed/retry"): Need(OPERATOR, Reach.ORG),
    ("GET", "/pipeline"): Need(VIEWER),
    ("POST", "/orgs/{org_id}/sync"): Need(OPERATOR, Reach.ORG),
    ("GET", "/orgs/new"): Need(ADMIN, Reach.ALL),
    ("POST", "/orgs/new"): Need(ADMIN, Reach.ALL),
    ("GET", "/orgs/{org_id}/edit"): Need(ADMIN, Reach.ORG),
    ("POST", "/orgs/{org_id}/edit"): Need(ADMIN, Reach.ORG),
    ("GET", "/webhooks"): Need(ADMIN, Reach.ALL),
    ("POST", "/webhooks"): Need(ADMIN, Reach.ALL),
    ("POST", "/webhooks/{webhook_id}/remove"): Need(ADMIN, Reach.ALL),
    ("GET", "/webhooks/{webhook_id}/deliveries"): Need(ADMIN, Reach.ALL),
    ("POST", "/deliveries/{delivery_id}/redeliver"): Need(ADMIN, Reach.ALL),
    ("GET", "/api/openapi.json"): PUBLIC,
    ("GET", "/api/orgs"): Need(VIEWER),
    ("GET", "/api/accounts"): Need(VIEWER),
    ("GET", "/api/accounts/{account_id}/badges"): Need(VIEWER, Reach.ORG),
    ("GET", "/api/failed"): Need(VIEWER),
    ("GET", "/api/syncs"): Need(VIEWER),
    ("POST", "/api/syncs"): Need(OPERATOR, Reach.ORG),
    ("GET", "/api/events"): Need(VIEWER),
    ("GET", "/api/registrations"): Need(VIEWER),
    # a new organization needs admin on all; an update (the body names org_id) on that one
    ("POST", "/api/registrations"): Need(ADMIN, Reach.ORG),
    # RabbitMQ's depths are every organization's work at once
    ("GET", "/api/queues"): Need(VIEWER, Reach.ALL),
    ("GET", "/api/webhooks"): Need(ADMIN, Reach.ALL),
    ("POST", "/api/webhooks"): Need(ADMIN, Reach.ALL),
    ("DELETE", "/api/webhooks/{webhook_id}"): Need(ADMIN, Reach.ALL),
    ("GET", "/api/webhooks/{webhook_id}/deliveries"): Need(ADMIN, Reach.ALL),
    ("POST", "/api/deliveries/{delivery_id}/redeliver"): Need(ADMIN, Reach.ALL),
    ("POST", "/api/orgs/{org}/sync"): Need(OPERATOR, Reach.ORG),
    ("POST", "/api/orgs/{org}/retry-failed"): Need(OPERATOR, Reach.ORG),
    # an administrator of some organizations sees the rows of those (audit_pages.py)
    ("GET", "/audit"): Need(ADMIN),
    ("GET", "/api/audit"): Need(ADMIN),
}


def bind(routes: Iterable[BaseRoute]) -> dict[tuple[Any, str], Need | None]:
    """Each route's row by (endpoint, method), for the decorators; raises for a route that
    the table does not name, so none is ever served without a decision."""
    needs: dict[tuple[Any, str], Need | None] = {}
    missing = []
    for route in routes:
        if not isinstance(route, Route):
            continue  # /static: files only
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            key = (method, route.path)
            if key not in ROUTES:
                missing.append(f"{method} {route.path}")
                continue
            needs[(route.endpoint, method)] = ROUTES[key]
            if method == "GET":
                needs[(route.endpoint, "HEAD")] = ROUTES[key]
    if missing:
        raise RuntimeError(f"services/web/roles.py names no role for: {', '.join(missing)}")
    return needs


def need(request: Request) -> Need:
    found = request.app.state.needs.get((request.scope.get("endpoint"), request.method))
    return found or Need(ADMIN, Reach.ALL)  # unreachable with bind(); the strictest if it were


def actor(request: Request) -> Actor:
    return request.state.actor  # type: ignore[no-any-return]


def scope(request: Request, role: Role = VIEWER) -> list[str] | None:
    """The organizations the actor sees (None: all), as the SQL's `%(scope)s`."""
    return scope_of(actor(request), role)


def sees_all(request: Request) -> bool:
    return actor(request).may(VIEWER)


def org_status(request: Request, org_id: str | None, role: Role | None = None) -> int:
    """0 when the actor holds the route's role (or `role`) on `org_id` (None: on every
    organization); 404 when they do not see it; 403 when they see it without the role."""
    who = actor(request)
    wanted = role or need(request).role
    if org_id is not None and not who.may(VIEWER, org_id):
        return 404
    return 0 if who.may(wanted, org_id) else 403


def account_status(request: Request, conn: Any, account_id: str) -> int:
    """org_status for an account's organization; 404 for no such account, and for a
    standalone account (in no organization) to those who do not see every one."""
    row = conn.execute(SQL["account_org"], (account_id[:64],)).fetchone()
    if row is None or (row["org_id"] is None and not sees_all(request)):
        return 404
    return org_status(request, row["org_id"])


def visible_org(conn: Any, request: Request, ref: str) -> str | None:
    """The organization `ref` (id or nickname) names, when the actor sees it; None otherwise,
    so that one out of scope reads exactly as one that does not exist."""
    org_id = resolve_org_id(conn, ref[:200])
    if org_id is None or not actor(request).may(VIEWER, org_id):
        return None
    return org_id
