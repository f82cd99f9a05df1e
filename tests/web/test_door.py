"""The door under abuse: bodies past the limit, hostile parameters on every route, bounded
waits, JSON 404s on the API, and the security headers."""

from __future__ import annotations

import dataclasses
import socket
import time
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from orgsync.services.settings import Settings
from orgsync.services.web.app import create_app
from tests.support.web import (
    PASSWORD,
    TOKEN,
    add_account,
    add_org,
    add_sync,
    csrf_token,
    serving,
)

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# what a route must refuse (400) or read as something harmless, never answer with a 500
HOSTILE_VALUES = [
    "²", "\uff11", "0", "-1", "9" * 40, "1e999", "nan", "inf", "%", "'", "<script>", "x" * 1001,
    "🙂", "",
]  # fmt: skip
CONTROL_VALUES = ["\x00", "a\x00b", "\x1b[31m"]  # refused at the door, whatever the route
PARAMETERS = [
    "page", "per_page", "limit", "offset", "org", "status", "badge", "sort", "order", "name",
    "include_removed", "excluded", "history", "state", "before", "fragment", "next", "wait",
    "timeout",
]  # fmt: skip
SAMPLE_PATH = {"account_id": "100000000001", "webhook_id": "wh_000000000000", "org_id": "alpha"}


@pytest.fixture
def inventory(conn: Any) -> None:
    add_org(conn, "o-aaaaaaaaaa", "alpha")
    sync_id = add_sync(conn, "o-aaaaaaaaaa")
    add_account(conn, "100000000001", "acct", "o-aaaaaaaaaa", sync_id=sync_id)
    conn.commit()


def get_routes(web: TestClient) -> list[str]:
    paths = [
        r.path
        for r in web.app.routes  # type: ignore[attr-defined]
        if isinstance(r, Route) and "GET" in (r.methods or ())
    ]
    assert len(paths) >= 15
    return paths


def fill(path: str, value: str) -> str:
    for name, sample in SAMPLE_PATH.items():
        path = path.replace(f"{{{name}}}", quote(value, safe="") if value else sample)
    return path


def refused_well(answer: Any, path: str) -> str | None:
    """Why an answer is not what the door promises (None when it is)."""
    if answer.status_code >= 500 and answer.status_code != 503:
        return f"{answer.status_code}"
    json = answer.headers.get("content-type", "").startswith("application/json")
    if path.startswith("/api/") and answer.status_code >= 400 and not json:
        return f"{answer.status_code} not JSON"
    return None


def hostile_queries() -> list[dict[str, str]]:
    """Every parameter with every hostile value, in few requests: request k gives parameter j
    the value (j + k) modulo their count, so each (parameter, value) pair is sent once."""
    n = len(HOSTILE_VALUES)
    return [{p: HOSTILE_VALUES[(j + k) % n] for j, p in enumerate(PARAMETERS)} for k in range(n)]


def test_every_get_route_answers_hostile_parameters_without_a_500(
    web: TestClient, inventory: None
) -> None:
    failures = []
    for route in get_routes(web):
        tries = [(fill(route, ""), q) for q in hostile_queries()]
        tries += [(fill(route, value), {}) for value in HOSTILE_VALUES + CONTROL_VALUES]
        tries += [(fill(route, ""), {name: v}) for v in CONTROL_VALUES for name in ("org", "x")]
        for path, query in tries:
            try:
                answer = web.get(path, params=query, headers=AUTH)
            except Exception as error:  # the test client raises what would have been a 500
                failures.append(f"{route} {path!r} {query}: {type(error).__name__}")
                continue
            if problem := refused_well(answer, route):
                failures.append(f"{route} {path!r} {query}: {problem}")
    assert failures == []


@pytest.fixture
def small_door(web_settings: Settings) -> Settings:
    return dataclasses.replace(web_settings, web_max_body_bytes=4096)


def test_a_body_past_the_limit_is_refused_unread_declared_or_chunked(small_door: Settings) -> None:
    with TestClient(create_app(small_door)) as http:
        declared = http.post("/login", content=b"password=" + b"x" * 5000)
        chunked = http.post("/api/registrations", headers=AUTH, content=iter([b"{" * 3000] * 2))
        within = http.post("/api/registrations?wait=false", headers=AUTH, content=b"[]")

    assert declared.status_code == 413 and "larger than 4096 bytes" in declared.text
    assert chunked.status_code == 413
    assert chunked.json() == {"error": "the body is larger than 4096 bytes"}
    assert within.status_code == 400  # read, and refused by the route for what it says


def test_an_anonymous_100_mb_login_is_answered_after_its_headers_alone(
    small_door: Settings,
) -> None:
    """The answer comes while not one byte of the 100 MB has been sent: the door went by the
    declared length, and nothing parsed a form."""
    with serving(create_app(small_door)) as url:
        address = urlsplit(url)
        with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
            sock.sendall(
                b"POST /login HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 100000000\r\n\r\n"
            )
            answer = sock.recv(4096)

    assert answer.startswith(b"HTTP/1.1 413")


def test_a_nul_in_a_form_field_or_a_json_body_is_refused_with_the_reason(
    web: TestClient, inventory: None
) -> None:
    token = csrf_token(web.get("/accounts/100000000001").text)
    form = {"action": "add", "key": "k\x00", "value": "v", "csrf_token": token}
    badge = web.post("/accounts/100000000001/badges", data=form)
    webhook = web.post("/api/webhooks", headers=AUTH, json={"url": "http://127.0.0.1/\x00"})
    org = web.post("/api/syncs", headers=AUTH, json={"org": "a\x00"})

    assert badge.status_code == 400 and "form field &#39;key&#39; holds a control" in badge.text
    assert (webhook.status_code, org.status_code) == (400, 400)
    assert "NUL" in webhook.json()["error"]


def test_a_request_id_that_breaks_its_rule_is_refused_at_once_not_after_the_timeout(
    web: TestClient,
) -> None:
    """The registrar files the verdict on such a request under the message id, so waiting on
    the id given always ended in a 504 after the full timeout."""
    started = time.monotonic()
    for request_id in (12345, "", "x" * 300, None):
        answer = web.post("/api/registrations", headers=AUTH, json={"request_id": request_id})
        assert answer.status_code == 400, request_id
        assert answer.json()["error"].startswith("request_id must be")
    assert time.monotonic() - started < 30  # a bound on a wait, not a measurement


def test_every_api_404_is_json(web: TestClient, inventory: None) -> None:
    for method, path in [
        ("GET", "/api/accounts?org=nobody"),
        ("GET", "/api/accounts/999999999999/badges"),
        ("GET", "/api/webhooks/wh_nosuchhook0/deliveries"),
        ("DELETE", "/api/webhooks/wh_nosuchhook0"),
        ("POST", "/api/deliveries/123/redeliver"),
        ("POST", "/api/orgs/nobody/sync"),
        ("POST", "/api/orgs/nobody/retry-failed"),
        ("GET", "/api/nowhere"),
        ("GET", "/api/audit?org=nobody"),
    ]:
        answer = web.request(method, path, headers=AUTH)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("application/json"), path
        assert answer.json()["error"], path


def test_permissions_policy_always_and_hsts_only_over_tls(web_settings: Settings) -> None:
    with TestClient(create_app(web_settings), follow_redirects=False) as plain:
        answers = [plain.get("/login"), plain.get("/api/orgs"), plain.get("/nowhere")]
    with TestClient(create_app(web_settings), base_url="https://testserver") as tls:
        secure = tls.get("/login")

    for answer in answers:
        assert "camera=()" in answer.headers["permissions-policy"]
        assert "strict-transport-security" not in answer.headers
    assert secure.headers["strict-transport-security"].startswith("max-age=31536000")
    assert "camera=()" in secure.headers["permissions-policy"]


def test_a_signed_in_console_shows_the_reason_for_a_bad_parameter(web: TestClient) -> None:
    answer = web.get("/audit", params={"limit": "0"})

    assert answer.status_code == 400 and "limit must be a whole number" in answer.text
    assert PASSWORD not in answer.text
