"""An organization out of a user's or a token's scope does not exist for them: 404 on its
routes, and absent from every list, count and chart of the console and the API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from orgsync.pipelines.access import Role
from orgsync.services.settings import Settings
from orgsync.services.use_cases import access
from orgsync.services.web.app import create_app
from tests.support.web import (
    add_account,
    add_failure,
    add_feed,
    add_org,
    add_sync,
    as_user,
    grant,
)

pytestmark = pytest.mark.integration
A, B = "o-aaaaaaaaaa", "o-bbbbbbbbbb"
SECRET_NAME = "beta-only-account"  # an account of B: no page or route of A's users shows it


@pytest.fixture
def world(web_settings: Settings, conn: Any) -> Iterator[TestClient]:
    add_org(conn, A, "alpha")
    add_org(conn, B, "beta")
    for org, prefix in ((A, "1"), (B, "2")):
        sync_id = add_sync(conn, org)
        add_account(conn, f"{prefix}00000000001", f"{org}-ok", org, sync_id=sync_id)
        add_account(
            conn, f"{prefix}00000000002", f"{org}-failing", org, status="assume_role_failed"
        )
        add_failure(conn, f"{prefix}00000000002", org, f"denied in {org}")
        add_feed(conn, org, f"{prefix}00000000001")
    add_account(conn, "200000000009", SECRET_NAME, B)
    add_account(conn, "300000000001", "standalone", None)
    conn.execute(
        "UPDATE accounts SET stage = 'reconciled', stage_at = now() - interval '5 minutes'"
        " WHERE account_id LIKE '2%'"
    )
    conn.execute(
        "INSERT INTO registrations (request_id, kind, org_id, request, accepted)"
        " VALUES ('r-b', 'update', %s, '{}', true)",
        (B,),
    )
    grant(conn, "alpha-viewers", "viewer", A)
    grant(conn, "alpha-operators", "operator", A)
    grant(conn, "alpha-admins", "admin", A)
    grant(conn, "everyone-viewers", "viewer", None)
    conn.commit()
    with TestClient(create_app(web_settings), follow_redirects=False) as http:
        yield http


def test_a_viewer_of_one_organization_sees_it_alone_on_every_page(
    world: TestClient, conn: Any
) -> None:
    as_user(world, conn, "ann", ["alpha-viewers"])
    for path in [
        "/orgs",
        "/accounts",
        "/accounts?include_removed=1&per_page=200",
        "/accounts?excluded=1",
        "/failed",
        "/pipeline",
        "/pipeline?fragment=1",
    ]:
        page = world.get(path)
        assert page.status_code == 200, path
        assert B not in page.text and "beta" not in page.text and SECRET_NAME not in page.text
    assert "standalone" not in world.get("/accounts").text
    assert '<p class="small" id="total">2 account(s)' in world.get("/accounts").text
    assert A in world.get("/failed").text
    for path in ["/accounts/200000000009", "/accounts/300000000001"]:
        assert world.get(path).status_code == 404, path
    listed = world.get("/accounts?org=beta")
    assert "no organization &#39;beta&#39;" in listed.text and SECRET_NAME not in listed.text


def test_the_scoped_pipeline_charts_count_only_the_users_organizations(
    world: TestClient, conn: Any
) -> None:
    as_user(world, conn, "eve", ["everyone-viewers"])
    everyone = world.get("/pipeline").text
    as_user(world, conn, "ann", ["alpha-viewers"])
    scoped = world.get("/pipeline").text
    # B's accounts reconciled 5 minutes ago: a point on the chart of those who see B only
    assert "depth-chart" in scoped and "Queue depth" not in scoped.split("depth-chart")[1][:200]
    assert "<polyline" not in scoped.split('id="rate-chart"')[1].split("</figure>")[0]
    assert "Queue depth" in everyone


def test_an_operator_of_one_organization_cannot_touch_another(world: TestClient, conn: Any) -> None:
    csrf = as_user(world, conn, "olga", ["alpha-operators"])
    assert world.post(f"/orgs/{B}/sync", data={"csrf_token": csrf}).status_code == 404
    assert world.post("/failed/retry", data={"csrf_token": csrf, "org": B}).status_code == 404
    retry_all = world.post("/failed/retry", data={"csrf_token": csrf})
    assert retry_all.status_code == 403  # every organization's failures: not theirs to retry
    badge = {"csrf_token": csrf, "key": "k", "value": "v"}
    assert world.post("/accounts/200000000009/badges", data=badge).status_code == 404
    assert world.get(f"/orgs/{A}/edit").status_code == 403  # seen, but not theirs to edit


def test_an_admin_of_one_organization_edits_it_but_registers_none_and_no_webhook(
    world: TestClient, conn: Any
) -> None:
    as_user(world, conn, "ada", ["alpha-admins"])
    assert world.get(f"/orgs/{A}/edit").status_code == 200
    assert world.get(f"/orgs/{B}/edit").status_code == 404
    assert world.get("/orgs/new").status_code == 403
    assert world.get("/webhooks").status_code == 403


def test_a_token_of_one_organization_reads_it_alone_through_the_api(
    world: TestClient, conn: Any
) -> None:
    token, _ = access.create_token(conn, "dash", Role.VIEWER, A, None)
    conn.commit()
    auth = {"Authorization": f"Bearer {token}"}
    for path in [
        "/api/orgs",
        "/api/accounts?include_removed=true",
        "/api/accounts?excluded=true",
        "/api/failed",
        "/api/syncs",
        "/api/events",
        "/api/registrations",
    ]:
        answer = world.get(path, headers=auth)
        assert answer.status_code == 200, path
        assert B not in answer.text and SECRET_NAME not in answer.text, path
    assert [o["org_id"] for o in world.get("/api/orgs", headers=auth).json()] == [A]
    for path in [
        "/api/accounts?org=beta",
        "/api/failed?org=o-bbbbbbbbbb",
        "/api/events?org=beta",
        "/api/syncs?org=beta",
        "/api/accounts/200000000009/badges",
    ]:
        answer = world.get(path, headers=auth)
        assert answer.status_code == 404, path
        assert answer.json()["error"]
    assert world.get("/api/queues", headers=auth).status_code == 403


def test_an_operator_token_of_one_organization_cannot_sync_another(
    world: TestClient, conn: Any
) -> None:
    token, _ = access.create_token(conn, "ops", Role.OPERATOR, A, None)
    conn.commit()
    auth = {"Authorization": f"Bearer {token}"}
    answer = world.post("/api/syncs", json={"org": "beta"}, headers=auth)
    assert answer.status_code == 404
    update = world.post(
        "/api/registrations?wait=false", json={"org_id": A, "nickname": "x"}, headers=auth
    )
    assert update.status_code == 403


def test_pages_offer_only_the_actions_the_role_allows(world: TestClient, conn: Any) -> None:
    as_user(world, conn, "vic", ["alpha-viewers"])
    seen = world.get("/orgs").text + world.get("/failed").text
    assert "Full sync now" not in seen and "Edit</a>" not in seen and "Retry" not in seen
    assert "Add an organization" not in seen
    csrf = as_user(world, conn, "olga", ["alpha-operators"])
    orgs, failed = world.get("/orgs").text, world.get("/failed").text
    assert "Full sync now" in orgs and "Edit</a>" not in orgs
    assert failed.count("Retry…") == 1 and '<option value="">all</option>' not in failed
    # the retry of one failed account of alpha, as its row's button sends it
    one = {"csrf_token": csrf, "account": "100000000002"}
    assert world.post("/failed/retry", data=one).status_code == 200
    other = {"csrf_token": csrf, "account": "200000000002"}
    assert world.post("/failed/retry", data=other).status_code == 404
