"""Webhooks for an administrator in the console and the API: the same use cases as the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from orgsync.pipelines.webhooks import new_secret
from orgsync.services.settings import Settings
from orgsync.services.web.app import create_app
from tests.support.web import TOKEN, add_account, add_org, csrf_token

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings)) as http:
        yield http


def test_the_api_adds_lists_shows_deliveries_and_removes_a_webhook(
    api: TestClient, conn: Any
) -> None:
    add_org(conn, "o-aaaaaaaaaa", "alpha")
    conn.commit()
    secret = new_secret()
    body = {"url": "http://127.0.0.1:9/hook", "secret": secret, "org": "alpha"}
    created = api.post("/api/webhooks", json=body, headers=AUTH)
    assert created.status_code == 200 and set(created.json()) == {"webhook_id"}
    webhook_id = created.json()["webhook_id"]

    [listed] = api.get("/api/webhooks", headers=AUTH).json()
    assert listed["org_id"] == "o-aaaaaaaaaa" and secret not in str(listed)
    assert api.get(f"/api/webhooks/{webhook_id}/deliveries", headers=AUTH).json() == []
    generated = api.post(
        "/api/webhooks",
        json={"url": "http://127.0.0.1:9/", "types": ["orgsync.account.added"]},
        headers=AUTH,
    )
    assert generated.json()["secret"].startswith("whsec_")
    assert api.delete(f"/api/webhooks/{webhook_id}", headers=AUTH).status_code == 200
    assert [h["webhook_id"] for h in api.get("/api/webhooks", headers=AUTH).json()] == [
        generated.json()["webhook_id"]
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"url": "http://169.254.169.254/"}, "link-local"),
        ({"url": "http://127.0.0.1/", "secret": "nope"}, "whsec_"),
        ({"url": "http://127.0.0.1/", "types": "orgsync.nothing"}, "unknown event type"),
        ({"url": "http://127.0.0.1/", "org": "nobody"}, "no organization"),
        ([], "JSON object"),
    ],
)
def test_the_api_refuses_a_webhook_it_cannot_send_to_with_the_reason(
    api: TestClient, body: Any, reason: str
) -> None:
    answer = api.post("/api/webhooks", json=body, headers=AUTH)
    assert answer.status_code == 400 and reason in answer.json()["error"]


def test_the_webhook_api_needs_the_token(api: TestClient) -> None:
    assert api.get("/api/webhooks").status_code == 401
    assert api.post("/api/webhooks", json={"url": "http://127.0.0.1/"}).status_code == 401
    assert api.get("/api/webhooks/x/deliveries", headers=AUTH).status_code == 404
    assert api.post("/api/deliveries/12/redeliver", headers=AUTH).status_code == 404


def test_the_console_adds_a_webhook_shows_its_secret_once_and_its_deliveries(
    web: TestClient, conn: Any
) -> None:
    page = web.get("/webhooks")
    assert page.status_code == 200 and "No webhook." in page.text
    form = {"csrf_token": csrf_token(page.text), "url": "http://127.0.0.1:9/hook"}
    added = web.post("/webhooks", data={**form, "types": ["orgsync.account.added"]})
    assert added.status_code == 201 and "whsec_" in added.text
    webhook_id = added.text.split('id="new-webhook">')[1].split("<")[0]
    add_account(conn, "100000000001", "acct", None)
    conn.commit()
    assert "whsec_" not in web.get("/webhooks").text
    assert web.get(f"/webhooks/{webhook_id}/deliveries").status_code == 200
    assert web.post("/webhooks", data={"url": "http://127.0.0.1/"}).status_code == 403
    refused = web.post("/webhooks", data={**form, "url": "http://[fe80::1]/"})
    assert refused.status_code == 400 and "link-local" in refused.text


def test_a_failed_delivery_is_redelivered_from_the_console_and_the_api(
    web: TestClient, api: TestClient, conn: Any
) -> None:
    page = web.get("/webhooks")
    form = {"csrf_token": csrf_token(page.text), "url": "http://127.0.0.1:9/hook"}
    webhook_id = web.post("/webhooks", data=form).text.split('id="new-webhook">')[1].split("<")[0]
    add_account(conn, "100000000001", "acct", None)
    conn.execute(
        "INSERT INTO webhook_deliveries (webhook_id, event_seq, state, last_status)"
        " SELECT %s, seq, 'failed', 500 FROM outbound_events",
        (webhook_id,),
    )
    conn.commit()
    [failed] = api.get(f"/api/webhooks/{webhook_id}/deliveries", headers=AUTH).json()
    listing = web.get(f"/webhooks/{webhook_id}/deliveries")
    assert "Redeliver" in listing.text and "orgsync.account.added" in listing.text

    again = web.post(
        f"/deliveries/{failed['delivery_id']}/redeliver",
        data={"csrf_token": csrf_token(listing.text)},
    )
    assert again.status_code == 303
    [pending] = api.get(f"/api/webhooks/{webhook_id}/deliveries", headers=AUTH).json()
    assert pending["state"] == "pending" and pending["event_id"] == failed["event_id"]
    answer = api.post(f"/api/deliveries/{failed['delivery_id']}/redeliver", headers=AUTH)
    assert answer.json() == {
        "delivery_id": failed["delivery_id"],
        "webhook_id": webhook_id,
        "state": "pending",
    }
