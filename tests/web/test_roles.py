"""Every route of the console and the API, called by every role (viewer, operator, admin; on
one organization and on all) and by a user with no grant: allowed or refused exactly as the
table of services/web/roles.py says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from orgsync.pipelines.access import Actor, Grant, Need, Reach, Role
from orgsync.services.settings import Settings
from orgsync.services.use_cases import access
from orgsync.services.web.app import create_app
from orgsync.services.web.roles import ROUTES
from tests.support.web import add_account, add_failure, add_org, add_sync, as_user, grant

pytestmark = pytest.mark.integration
A, B = "o-aaaaaaaaaa", "o-bbbbbbbbbb"
IN_A, IN_B = "100000000001", "200000000001"

# one request per route, on organization A (or an account of A) where it names one; each is
# answered without waiting on a worker (a form or body the handler refuses, or a dry run)
BAD_RATES = {"nickname": "x", "aws_rates": "nonsense"}
CALLS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/logout"): {"url": "/logout", "data": {}},
    ("GET", "/orgs"): {"url": "/orgs"},
    ("GET", "/accounts"): {"url": "/accounts"},
    ("GET", "/accounts/{account_id}"): {"url": f"/accounts/{IN_A}"},
    ("POST", "/accounts/{account_id}/badges"): {
        "url": f"/accounts/{IN_A}/badges",
        "data": {"key": "owner", "value": "me"},
    },
    ("GET", "/failed"): {"url": "/failed"},
    ("POST", "/failed/retry"): {"url": "/failed/retry", "data": {"org": A}},
    ("GET", "/pipeline"): {"url": "/pipeline"},
    ("POST", "/orgs/{org_id}/sync"): {"url": f"/orgs/{A}/sync", "data": {"mode": "bogus"}},
    ("GET", "/orgs/new"): {"url": "/orgs/new"},
    ("POST", "/orgs/new"): {"url": "/orgs/new", "data": BAD_RATES},
    ("GET", "/orgs/{org_id}/edit"): {"url": f"/orgs/{A}/edit"},
    ("POST", "/orgs/{org_id}/edit"): {"url": f"/orgs/{A}/edit", "data": BAD_RATES},
    ("GET", "/webhooks"): {"url": "/webhooks"},
    ("POST", "/webhooks"): {"url": "/webhooks", "data": {"url": "ftp://x"}},
    ("POST", "/webhooks/{webhook_id}/remove"): {"url": "/webhooks/wh_nothing/remove", "data": {}},
    ("GET", "/webhooks/{webhook_id}/deliveries"): {"url": "/webhooks/wh_nothing/deliveries"},
    ("POST", "/deliveries/{delivery_id}/redeliver"): {"url": "/deliveries/1/redeliver", "data": {}},
    ("GET", "/api/orgs"): {"url": "/api/orgs"},
    ("GET", "/api/accounts"): {"url": "/api/accounts"},
    ("GET", "/api/accounts/{account_id}/badges"): {"url": f"/api/accounts/{IN_A}/badges"},
    ("GET", "/api/failed"): {"url": "/api/failed"},
    ("GET", "/api/syncs"): {"url": "/api/syncs"},
    ("POST", "/api/syncs"): {"url": "/api/syncs", "json": {"org": A, "mode": "bogus"}},
    ("GET", "/api/events"): {"url": "/api/events"},
    ("GET", "/api/registrations"): {"url": "/api/registrations"},
    ("POST", "/api/registrations"): {
        "url": "/api/registrations?timeout=nan",
        "json": {"org_id": A, "nickname": "x"},
    },
    ("GET", "/api/queues"): {"url": "/api/queues"},
    ("GET", "/api/webhooks"): {"url": "/api/webhooks"},
    ("POST", "/api/webhooks"): {"url": "/api/webhooks", "json": {"url": "ftp://x"}},
    ("DELETE", "/api/webhooks/{webhook_id}"): {"url": "/api/webhooks/wh_nothing"},
    ("GET", "/api/webhooks/{webhook_id}/deliveries"): {"url": "/api/webhooks/wh_x/deliveries"},
    ("POST", "/api/deliveries/{delivery_id}/redeliver"): {
        "url": "/api/deliveries/1/redeliver",
        "json": {},
    },
    ("POST", "/api/orgs/{org}/sync"): {"url": f"/api/orgs/{A}/sync", "json": {"mode": "bogus"}},
    ("POST", "/api/orgs/{org}/retry-failed"): {
        "url": f"/api/orgs/{A}/retry-failed",
        "json": {"account": 12},
    },
    ("GET", "/audit"): {"url": "/audit"},
    ("GET", "/api/audit"): {"url": "/api/audit"},
}
ROLES = [(role, org) for role in (Role.VIEWER, Role.OPERATOR, Role.ADMIN) for org in (A, None)]


def allowed(need: Need, grants: tuple[Grant, ...]) -> bool:
    actor = Actor("user", "x", grants)
    if need.reach is Reach.SIGNED_IN:
        return True
    return bool(grants) and need.met_by(actor) and actor.may(need.role, A)


@pytest.fixture
def world(web_settings: Settings, conn: Any) -> Iterator[TestClient]:
    add_org(conn, A, "alpha")
    add_org(conn, B, "beta")
    add_sync(conn, A)
    add_account(conn, IN_A, "a-one", A, status="assume_role_failed")
    add_failure(conn, IN_A, A, "denied")
    add_account(conn, IN_B, "b-one", B)
    for role, org in ROLES:
        grant(conn, f"{role}-{org or 'all'}", str(role), org)
    conn.commit()
    with TestClient(create_app(web_settings), follow_redirects=False) as http:
        yield http


def test_every_route_is_in_the_table_and_in_this_test() -> None:
    public = {key for key, need in ROUTES.items() if need is None}
    assert set(CALLS) == set(ROUTES) - public


def call(http: TestClient, method: str, how: dict[str, Any], csrf: str, token: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = {**how["data"], "csrf_token": csrf} if "data" in how else None
    return http.request(method, how["url"], data=data, json=how.get("json"), headers=headers)


@pytest.mark.parametrize(("role", "org"), [*ROLES, (None, None)])
def test_each_role_calls_exactly_the_routes_its_grant_allows(
    world: TestClient, conn: Any, role: Role | None, org: str | None
) -> None:
    grants = (Grant(role, org),) if role else ()
    group = f"{role}-{org or 'all'}" if role else "no-such-group"
    token = ""
    if role:
        token, _ = access.create_token(conn, f"t-{role}-{org or 'all'}", role, org, None)
        conn.commit()
    wrong = []
    for (method, path), how in CALLS.items():
        need = ROUTES[(method, path)]
        assert need is not None
        if path.startswith("/api/"):
            answer = call(world, method, how, "", token or "osk_unknown")
            refused = {401} if not role else {403}
        else:
            csrf = as_user(world, conn, "ann", [group])
            answer = call(world, method, how, csrf)
            refused = {403}
        ok = allowed(need, grants)
        signed_out = answer.headers.get("location", "").startswith("/login?")
        if answer.status_code == 500 or signed_out or ok == (answer.status_code in refused):
            wrong.append(f"{method} {path}: {answer.status_code}, expected allowed={ok}")
    assert wrong == []


def test_a_user_whose_groups_have_no_grant_sees_a_no_access_page(
    world: TestClient, conn: Any
) -> None:
    as_user(world, conn, "nobody", ["interns"])
    page = world.get("/orgs")
    assert page.status_code == 403
    assert "No access" in page.text and "orgsync grants add" in page.text
    assert "alpha" not in page.text


def test_a_route_the_table_does_not_name_stops_the_console_starting() -> None:
    from starlette.routing import Route

    from orgsync.services.web import roles

    with pytest.raises(RuntimeError, match=re.escape("no role for: POST /orgs/{org_id}/delete")):
        roles.bind([Route("/orgs/{org_id}/delete", lambda request: None, methods=["POST"])])
