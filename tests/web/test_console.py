"""The console over HTTP: sign-in, sessions, CSRF, security headers, escaping, the pages."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from typing import Any

import pytest
from psycopg.types.json import Jsonb
from starlette.testclient import TestClient

from orgsync.services.settings import Settings
from orgsync.services.web.app import create_app
from orgsync.services.web.auth import Guard, hash_password
from tests.support.web import (
    HOSTILE,
    PASSWORD,
    add_account,
    add_failure,
    add_feed,
    add_org,
    add_sync,
    csrf_token,
    sign_in,
)

pytestmark = pytest.mark.integration
PAGES = ["/orgs", "/orgs/new", "/accounts", "/accounts/123456789012", "/failed", "/pipeline"]


def test_without_a_session_every_page_redirects_to_the_sign_in_page(anonymous: TestClient) -> None:
    for path in PAGES:
        response = anonymous.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")
    assert anonymous.get("/pipeline?fragment=1", headers={"X-Refresh": "1"}).status_code == 401
    token = csrf_token(anonymous.get("/login").text)  # a token, but no signed-in session
    assert anonymous.post("/failed/retry", data={"csrf_token": token}).status_code == 303
    assert anonymous.post("/failed/retry", data={}).status_code == 403


def test_a_wrong_password_is_refused_and_the_right_one_signs_in(anonymous: TestClient) -> None:
    first = sign_in(anonymous, "wrong")
    second = sign_in(anonymous, "wrong again")
    assert first.status_code == second.status_code == 401
    assert "Wrong password." in second.text

    response = sign_in(anonymous)
    assert response.status_code == 303 and response.headers["location"] == "/orgs"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    assert anonymous.get("/orgs").status_code == 200


def test_a_signed_out_session_cookie_no_longer_opens_a_page(web: TestClient) -> None:
    cookie = web.cookies.get("orgsync_session")
    token = csrf_token(web.get("/orgs").text)
    assert web.post("/logout", data={"csrf_token": token}).headers["location"] == "/login"
    web.cookies.set("orgsync_session", cookie)  # replayed by someone who kept it
    assert web.get("/orgs").status_code == 303


def test_the_session_cookie_is_secure_behind_a_tls_proxy(web_settings: Settings) -> None:
    proxied = dataclasses.replace(web_settings, web_trusted_proxies="testclient")
    with TestClient(create_app(proxied), follow_redirects=False) as http:
        page = http.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert "Secure" in page.headers["set-cookie"]
        assert "Secure" not in http.get("/login").headers["set-cookie"]


def test_sign_in_never_redirects_off_the_site(anonymous: TestClient) -> None:
    token = csrf_token(anonymous.get("/login").text)
    response = anonymous.post(
        "/login", data={"password": PASSWORD, "csrf_token": token, "next": "//evil.example/"}
    )
    assert response.headers["location"] == "/orgs"


def test_a_form_posted_without_its_csrf_token_is_refused(anonymous: TestClient) -> None:
    anonymous.get("/login")
    assert anonymous.post("/login", data={"password": PASSWORD}).status_code == 403
    sign_in(anonymous)
    for path, data in [
        ("/failed/retry", {"account": "123456789012"}),
        ("/orgs/new", {"nickname": "x"}),
        ("/accounts/123456789012/badges", {"key": "a", "value": "b"}),
        ("/logout", {}),
    ]:
        assert anonymous.post(path, data=data).status_code == 403, path
        assert anonymous.post(path, data={**data, "csrf_token": "forged"}).status_code == 403


def test_pages_forbid_inline_script_and_framing(web: TestClient) -> None:
    response = web.get("/orgs")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in response.text and "onclick" not in response.text


def test_text_from_aws_is_escaped_on_every_page(web: TestClient, conn: Any) -> None:
    add_org(conn, "o-hostile0001", HOSTILE)
    sync_id = add_sync(conn, "o-hostile0001")
    add_account(
        conn,
        "210987654321",
        HOSTILE,
        "o-hostile0001",
        status="assume_role_failed",
        tags={HOSTILE: HOSTILE},
        badges={HOSTILE: HOSTILE, "system.cloud_organization": "o-hostile0001"},
        sync_id=sync_id,
    )
    add_failure(conn, "210987654321", "o-hostile0001", HOSTILE)
    conn.commit()
    for path in ["/orgs", "/accounts", "/accounts/210987654321", "/failed", "/pipeline"]:
        html = web.get(path).text
        assert "<script>alert" not in html, path
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html, path


def test_the_count_of_an_organization_links_to_the_listing_filtered_by_its_badge(
    web: TestClient, conn: Any
) -> None:
    add_org(conn, "o-aaaaaaaaaa", "alpha")
    add_org(conn, "o-bbbbbbbbbb", "beta")
    for n, org in enumerate(["o-aaaaaaaaaa", "o-aaaaaaaaaa", "o-bbbbbbbbbb"]):
        add_account(
            conn, f"10000000000{n}", f"acct-{n}", org, badges={"system.cloud_organization": org}
        )
    conn.commit()
    orgs = web.get("/orgs").text
    link = "/accounts?badge=system.cloud_organization%3Do-aaaaaaaaaa"
    assert f'href="{link}">2 account(s)</a>' in orgs
    listing = web.get(link).text
    assert "acct-0" in listing and "acct-1" in listing and "acct-2" not in listing
    assert "2 account(s)" in listing


def test_the_listing_pages_and_sorts_on_the_server(web: TestClient, conn: Any) -> None:
    add_org(conn, "o-cccccccccc", "gamma")
    for n in range(7):
        add_account(conn, f"2000000000{n:02d}", f"name-{n}", "o-cccccccccc")
    conn.commit()
    first = web.get("/accounts?per_page=3&sort=name&order=desc").text
    assert "name-6" in first and "name-4" in first and "name-3" not in first
    assert "page 1 of 3" in first
    last = web.get("/accounts?per_page=3&sort=name&order=desc&page=3").text
    assert "name-0" in last and "name-1" not in last
    assert "name-5" in web.get("/accounts?name=ME-5").text
    assert "name-5" not in web.get("/accounts?status=suspended").text
    assert "status must be one of" in web.get("/accounts?status=bogus").text
    for page in ("\u00b2", "99999999999999999999", "nan", "-1"):  # the first page, not a 500
        answer = web.get(f"/accounts?per_page=3&sort=name&order=desc&page={page}")
        assert answer.status_code == 200 and "page 1 of 3" in answer.text
    assert "page 1 of 1" in web.get("/accounts?per_page=\u00b9\u00b9&page=1").text


def test_a_managed_account_offers_no_edit_and_a_standalone_one_follows_the_cli_rules(
    web: TestClient, conn: Any
) -> None:
    add_org(conn, "o-dddddddddd", "delta")
    add_account(
        conn,
        "300000000001",
        "managed",
        "o-dddddddddd",
        tags={"env": "prod"},
        badges={"env": "prod"},
    )
    add_account(conn, "300000000002", "alone", None)
    conn.commit()
    managed = web.get("/accounts/300000000001").text
    assert "Managed by organization" in managed and "delta" in managed
    assert "<form" not in managed.split("<main>")[1]  # no edit, no delete

    page = web.get("/accounts/300000000002").text
    token = csrf_token(page)
    added = web.post(
        "/accounts/300000000002/badges",
        data={"action": "add", "key": "owner", "value": "sec", "csrf_token": token},
    ).text
    assert "1 badge change(s) saved" in added and "owner" in added
    refused = web.post(
        "/accounts/300000000002/badges",
        data={"action": "add", "key": "system.x", "value": "1", "csrf_token": token},
    ).text
    assert "belongs to orgsync" in refused


def test_the_edit_form_never_shows_credentials(web: TestClient, conn: Any) -> None:
    add_org(conn, "o-eeeeeeeeee", "epsilon")
    conn.commit()
    html = web.get("/orgs/o-eeeeeeeeee/edit").text
    assert 'name="org_role_arn" autocomplete="off" value=""' in html
    assert "sandbox-" in html  # the filters are shown
    assert web.get("/orgs/o-nothere000/edit").status_code == 404


def test_the_aws_rate_override_is_shown_prefilled_and_a_malformed_one_named_beside_it(
    web: TestClient, conn: Any
) -> None:
    add_org(conn, "o-ffffffffff", "phi")
    override = {"*": {"floor": 1, "ceiling": 20}, "ListParents": {"floor": 0.5, "ceiling": 5}}
    conn.execute(
        "UPDATE organizations SET aws_rates = %s WHERE org_id = 'o-ffffffffff'", (Jsonb(override),)
    )
    conn.commit()
    assert "AWS rates <code>*=1:20,ListParents=0.5:5</code>" in web.get("/orgs").text
    page = web.get("/orgs/o-ffffffffff/edit").text
    assert 'name="aws_rates" value="*=1:20,ListParents=0.5:5"' in page

    refused = web.post(
        "/orgs/o-ffffffffff/edit",
        data={"csrf_token": csrf_token(page), "nickname": "phi", "aws_rates": "ListParents=5"},
    )

    assert refused.status_code == 422  # refused before anything is published
    field = refused.text.split('id="field-aws_rates"')[1].split("</div>")[0]
    assert "AWS rate override: &#39;ListParents=5&#39;: expected API=FLOOR:CEILING" in field
    assert 'value="ListParents=5"' in field  # shown again as typed


def test_retrying_shows_the_count_before_it_queues(
    web: TestClient, conn: Any, own_broker_url: str, web_settings: Settings
) -> None:
    add_org(conn, "o-ffffffffff", "phi")
    sync_id = add_sync(conn, "o-ffffffffff")
    add_account(
        conn,
        "400000000001",
        "failing",
        "o-ffffffffff",
        status="assume_role_failed",
        sync_id=sync_id,
    )
    add_failure(conn, "400000000001", "o-ffffffffff", "denied")
    conn.commit()
    settings = dataclasses.replace(web_settings, broker_url=own_broker_url)
    with TestClient(create_app(settings), follow_redirects=False) as http:
        sign_in(http)
        token = csrf_token(http.get("/failed").text)
        asked = http.post("/failed/retry", data={"account": "400000000001", "csrf_token": token})
        assert "would queue 1 account(s) for validation" in asked.text
        assert conn.execute("SELECT stage FROM accounts").fetchone()["stage"] == "validated"
        done = http.post(
            "/failed/retry",
            data={"account": "400000000001", "confirm": "yes", "csrf_token": token},
        )
        assert "queued 1 account(s) for validation" in done.text
    conn.rollback()
    assert conn.execute("SELECT stage FROM accounts").fetchone()["stage"] == "discovered"


def test_orgsync_web_refuses_to_start_without_a_password_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orgsync", "web", "--port", "0"],
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "ORGSYNC_WEB_PASSWORD" in done.stderr


def test_a_password_hash_signs_in_with_its_password_only() -> None:
    made = subprocess.run(
        [sys.executable, "-m", "orgsync", "web", "--hash-password"],
        input="s3cret-s3cret\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    assert made.startswith("scrypt$16384$8$1$")
    guard = Guard(Settings(web_password_hash=made))
    assert guard.password_ok("s3cret-s3cret") and not guard.password_ok("s3cret-s3cret ")
    assert Guard(Settings(web_password_hash=hash_password("x"))).password_ok("x")


def test_the_settings_never_show_the_console_secrets() -> None:
    settings = Settings.from_env(
        {
            "ORGSYNC_WEB_PASSWORD": "pw-secret-long-enough",
            "ORGSYNC_WEB_PASSWORD_HASH": "hash-secret",
            "ORGSYNC_WEB_SESSION_SECRET": "session-secret-" + "s" * 32,
            "ORGSYNC_API_TOKEN": "token-secret-" + "t" * 32,
            "ORGSYNC_WEB_PORT": "8181",
            "ORGSYNC_WEB_SECURE_COOKIES": "true",
        }
    )
    assert settings.web_port == 8181 and settings.web_secure_cookies is True
    assert settings.api_token == "token-secret-" + "t" * 32
    assert "secret" not in repr(settings)


def test_the_pipeline_page_counts_the_accounts_at_each_stage_of_the_current_sync(
    web: TestClient, conn: Any
) -> None:
    add_org(conn, "o-gggggggggg", "gamma")
    sync_id = add_sync(conn, "o-gggggggggg")
    for n in range(3):
        add_account(conn, f"50000000000{n}", f"g-{n}", "o-gggggggggg", sync_id=sync_id)
    conn.commit()
    fragment = web.get("/pipeline?fragment=1", headers={"X-Refresh": "1"}).text
    assert "<h1>" not in fragment  # only the part the page swaps in
    row = fragment.split("<td>gamma</td>")[1].split("</tr>")[0]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    # sync id, state, then discovered, validated, harvested, reconciled
    assert cells[1:] == ["complete", "0", "3", "0", "0"]
    assert "org-registration" in fragment  # the queues, from RabbitMQ


def test_a_page_that_does_not_exist_is_the_consoles_own_error_page(web: TestClient) -> None:
    missing = web.get("/nothing-here")
    assert missing.status_code == 404
    assert '<link rel="stylesheet"' in missing.text  # the console's own page, styled
    assert "no such route: /nothing-here" in missing.text
    assert web.get("/accounts/000000000000").status_code == 404
    api = web.get("/api/nothing")
    assert api.status_code == 404 and api.json() == {"error": "no such route: GET /api/nothing"}


def test_the_change_feed_shows_on_the_organizations_and_pipeline_pages(
    web: TestClient, conn: Any
) -> None:
    add_org(conn, "o-ffeedfeed0", "fed")
    add_account(conn, "100000000021", "tagged", "o-ffeedfeed0")
    add_sync(conn, "o-ffeedfeed0")
    add_feed(conn, "o-ffeedfeed0", "100000000021")
    conn.commit()

    orgs = web.get("/orgs").text
    assert "change events: 2 handled" in orgs and "lag 0.4 s" in orgs

    pipeline = web.get("/pipeline").text
    feeds = pipeline.split('id="feeds"')[1].split("</table>")[0]
    assert "fed" in feeds and "orgsync-events" in feeds and "reading, last poll" in feeds
    events = pipeline.split('id="events"')[1].split("</table>")[0]
    assert events.index("the body is not JSON") < events.index("TagResource")  # newest first
    assert "2000-01-01" not in pipeline  # the feed's own sync is no "last sync"

    history = web.get("/accounts/100000000021").text.split("Badge history")[1]
    assert "a change event" in history


def test_the_pipeline_page_draws_the_last_hour_as_svg_charts(web: TestClient) -> None:
    web.app.state.history.sample()  # type: ignore[attr-defined]  # what its thread does
    page = web.get("/pipeline?fragment=1").text
    depth = page.split('id="depth-chart"')[1].split("</figure>")[0]
    assert depth.count('class="series"') == 5 and "<title>Queue depth, last hour</title>" in depth
    assert 'id="rate-chart"' in page and "accounts/s" in page


def test_the_pipeline_history_thread_ends_with_the_console(web_settings: Settings) -> None:
    with TestClient(create_app(web_settings)) as http:
        history = http.app.state.history  # type: ignore[attr-defined]
        assert history.thread.is_alive()
    assert not history.thread.is_alive()  # no sample outlives the console's database
