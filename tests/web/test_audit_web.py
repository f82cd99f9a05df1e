"""The audit trail through the console's and the API's doors, the two new API routes that
start work on one organization, and the trail's page and listing."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from orgsync.pipelines.access import Role
from orgsync.services.settings import Settings
from orgsync.services.use_cases import access
from orgsync.services.web.app import create_app
from tests.support.web import (
    TOKEN,
    add_account,
    add_failure,
    add_org,
    add_sync,
    csrf_token,
    sign_in,
)

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORG = "o-aaaaaaaaaa"
CONSOLE, API = ("user:break-glass", "console"), ("token:break-glass", "api")


@pytest.fixture
def own_settings(web_settings: Settings, own_broker_url: str) -> Settings:
    return dataclasses.replace(web_settings, broker_url=own_broker_url)


@pytest.fixture
def api(own_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(own_settings)) as http:
        yield http


@pytest.fixture
def console(own_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(own_settings), follow_redirects=False) as http:
        sign_in(http)
        yield http


@pytest.fixture
def failing(conn: Any) -> None:
    add_org(conn, ORG, "alpha")
    sync_id = add_sync(conn, ORG)
    for n in (1, 2):
        account = f"10000000000{n}"
        add_account(conn, account, "f", ORG, status="assume_role_failed", sync_id=sync_id)
        add_failure(conn, account, ORG, "denied")
    add_account(conn, "200000000002", "solo", None)
    conn.commit()


def trail(api: TestClient, query: str = "") -> list[dict[str, Any]]:
    answer = api.get(f"/api/audit{query}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return list(reversed(answer.json()))


def test_the_api_starts_a_sync_of_one_organization_and_records_it(
    api: TestClient, failing: None
) -> None:
    full = api.post(f"/api/orgs/{ORG}/sync", headers=AUTH)
    incremental = api.post("/api/orgs/alpha/sync", headers=AUTH, json={"mode": "incremental"})

    assert full.status_code == 202 and full.json()["mode"] == "full"
    assert incremental.status_code == 202 and incremental.json()["org_id"] == ORG
    rows = trail(api)
    assert [(r["actor"], r["via"], r["action"], r["subject"]) for r in rows] == [
        (*API, "sync.start", full.json()["sync_id"]),
        (*API, "sync.start", incremental.json()["sync_id"]),
    ]
    assert rows[1]["changes"] == {"mode": "incremental", "confirm_removals": False}


def test_the_api_sync_route_refuses_what_it_cannot_do_in_json(
    api: TestClient, failing: None
) -> None:
    wrong_mode = api.post(f"/api/orgs/{ORG}/sync", headers=AUTH, json={"mode": "fast"})
    not_json = api.post(f"/api/orgs/{ORG}/sync", headers=AUTH, content=b"{")
    unknown = api.post("/api/orgs/o-nosuchorg0/sync", headers=AUTH)
    anonymous = api.post(f"/api/orgs/{ORG}/sync")

    assert (wrong_mode.status_code, not_json.status_code, unknown.status_code) == (400, 400, 404)
    assert "mode must be one of full, incremental" in wrong_mode.json()["error"]
    assert unknown.json() == {"error": "no organization 'o-nosuchorg0'"}
    assert anonymous.status_code == 401
    assert trail(api) == []


def test_the_api_retries_an_organizations_failed_accounts_and_records_the_count(
    api: TestClient, failing: None
) -> None:
    answer = api.post(f"/api/orgs/{ORG}/retry-failed", headers=AUTH)
    again = api.post(f"/api/orgs/{ORG}/retry-failed", headers=AUTH, json={"account": 12})

    assert answer.status_code == 202 and answer.json()["queued"] == 2
    assert again.status_code == 400 and "account must be text" in again.json()["error"]
    [row] = trail(api)
    assert (row["actor"], row["via"], row["action"], row["org_id"]) == (*API, "failed.retry", ORG)
    assert row["changes"] == {"account": None, "code": None, "queued": 2}


def test_every_console_change_writes_one_row_as_the_signed_in_user(
    console: TestClient, api: TestClient, failing: None, conn: Any
) -> None:
    token = csrf_token(console.get("/failed").text)
    assert console.post(f"/orgs/{ORG}/sync", data={"csrf_token": token}).status_code == 303
    console.post("/failed/retry", data={"csrf_token": token})  # a dry run changes nothing
    console.post("/failed/retry", data={"csrf_token": token, "confirm": "yes"})
    console.post(
        "/accounts/200000000002/badges",
        data={"action": "add", "key": "owner", "value": "sec", "csrf_token": token},
    )
    added = console.post("/webhooks", data={"csrf_token": token, "url": "http://127.0.0.1:9/h"})
    webhook_id = added.text.split('id="new-webhook">')[1].split("<")[0]
    secret = added.text.split("whsec_")[1].split("<")[0]
    conn.execute(
        "INSERT INTO webhook_deliveries (webhook_id, event_seq, state)"
        " SELECT %s, seq, 'failed' FROM outbound_events LIMIT 1 RETURNING delivery_id",
        (webhook_id,),
    )
    [delivery] = conn.execute("SELECT delivery_id FROM webhook_deliveries").fetchall()
    conn.commit()
    console.post(f"/deliveries/{delivery['delivery_id']}/redeliver", data={"csrf_token": token})
    console.post(f"/webhooks/{webhook_id}/remove", data={"csrf_token": token})

    rows = trail(api)
    assert {(r["actor"], r["via"]) for r in rows} == {CONSOLE}
    assert [r["action"] for r in rows] == [
        "sync.start", "failed.retry", "badges.edit",
        "webhook.add", "webhook.redeliver", "webhook.remove",
    ]  # fmt: skip
    assert rows[2]["changes"] == {"owner": {"old": None, "new": "sec"}}
    assert rows[3]["changes"]["secret"] == "[secret changed]" and secret not in str(rows)
    page = console.get("/audit")
    assert page.status_code == 200 and "webhook.redeliver" in page.text
    assert "owner: null -&gt; sec" in page.text


def test_every_api_webhook_change_writes_one_row_as_the_token(api: TestClient, conn: Any) -> None:
    added = api.post("/api/webhooks", headers=AUTH, json={"url": "http://127.0.0.1:9/h"}).json()
    add_account(conn, "100000000001", "acct", None)
    conn.execute(
        "INSERT INTO webhook_deliveries (webhook_id, event_seq, state)"
        " SELECT %s, seq, 'failed' FROM outbound_events",
        (added["webhook_id"],),
    )
    [delivery] = conn.execute("SELECT delivery_id FROM webhook_deliveries").fetchall()
    conn.commit()
    api.post(f"/api/deliveries/{delivery['delivery_id']}/redeliver", headers=AUTH)
    api.delete(f"/api/webhooks/{added['webhook_id']}", headers=AUTH)
    api.post("/api/syncs", headers=AUTH, json={"org": "nobody"})  # 404: nothing changed

    rows = trail(api)
    assert [(r["actor"], r["via"], r["action"]) for r in rows] == [
        (*API, "webhook.add"), (*API, "webhook.redeliver"), (*API, "webhook.remove")
    ]  # fmt: skip
    assert added["secret"] not in str(rows)


def test_the_trail_pages_back_with_a_link_and_filters_by_organization(
    api: TestClient, console: TestClient, failing: None
) -> None:
    for _ in range(3):
        api.post(f"/api/orgs/{ORG}/sync", headers=AUTH)
    api.post("/api/webhooks", headers=AUTH, json={"url": "http://127.0.0.1:9/h"})

    first = api.get("/api/audit?limit=2", headers=AUTH)
    assert [r["action"] for r in first.json()] == ["webhook.add", "sync.start"]
    following = first.headers["link"].split(">")[0][1:]
    second = api.get(following, headers=AUTH)
    assert [r["action"] for r in second.json()] == ["sync.start", "sync.start"]
    assert "link" not in second.headers
    assert {r["org_id"] for r in trail(api, "?org=alpha")} == {ORG}
    assert api.get("/api/audit?org=nobody", headers=AUTH).status_code == 404
    assert api.get("/api/audit?limit=0", headers=AUTH).status_code == 400
    assert api.get("/api/audit?before=x", headers=AUTH).json()["error"].startswith("before")
    assert api.get("/api/audit").status_code == 401
    paged = console.get("/audit?limit=2")
    assert "Older changes" in paged.text and "before=" in paged.text
    assert console.get("/audit?limit=0").status_code == 400


def test_an_organizations_admin_sees_its_rows_and_nothing_of_another(
    api: TestClient, failing: None, conn: Any
) -> None:
    add_org(conn, "o-bbbbbbbbbb", "beta")
    admin_of_a, _ = access.create_token(conn, "a-admin", Role.ADMIN, ORG, None)
    operator_of_a, _ = access.create_token(conn, "a-operator", Role.OPERATOR, ORG, None)
    conn.commit()
    as_a = {"Authorization": f"Bearer {admin_of_a}"}
    api.post("/api/orgs/beta/sync", headers=AUTH)  # break-glass, on B
    api.post("/api/webhooks", headers=AUTH, json={"url": "http://127.0.0.1:9/h"})  # on none
    mine = api.post(f"/api/orgs/{ORG}/sync", headers={"Authorization": f"Bearer {operator_of_a}"})
    theirs = api.post("/api/orgs/beta/retry-failed", headers=as_a)

    assert mine.status_code == 202 and theirs.status_code == 404
    rows = api.get("/api/audit", headers=as_a).json()
    assert [(r["actor"], r["org_id"]) for r in rows] == [("token:a-operator", ORG)]
    assert api.get("/api/audit?org=beta", headers=as_a).status_code == 404
    operator = api.get("/api/audit", headers={"Authorization": f"Bearer {operator_of_a}"})
    assert operator.status_code == 403
