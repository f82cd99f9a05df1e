"""Sessions, grants and named tokens held in PostgreSQL: what one web process voids, every
other one (and one started again) refuses too."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from starlette.testclient import TestClient

from orgsync.services.commands import cli
from orgsync.services.settings import Settings
from orgsync.services.web.app import create_app
from tests.support.web import PASSWORD, add_org, as_user, csrf_token, grant, sign_in

pytestmark = pytest.mark.integration
SECRET = "a-session-secret-shared-by-every-process"


@pytest.fixture
def shared(web_settings: Settings) -> Settings:
    """The settings of several `orgsync web` processes behind one load balancer."""
    return dataclasses.replace(web_settings, web_session_secret=SECRET)


@contextmanager
def process(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), follow_redirects=False) as http:
        yield http


def run(settings: Settings, monkeypatch: Any, capsys: Any, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("ORGSYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ORGSYNC_BROKER_URL", settings.broker_url)
    capsys.readouterr()
    try:
        code = cli.main(list(args))
    except SystemExit as exit:  # argparse refusing an option
        code = int(exit.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_signing_out_in_one_process_voids_the_session_in_another_and_after_a_restart(
    shared: Settings,
) -> None:
    with process(shared) as one, process(shared) as two:
        sign_in(one)
        cookie = one.cookies["orgsync_session"]
        two.cookies.set("orgsync_session", cookie)
        assert two.get("/orgs").status_code == 200
        token = csrf_token(one.get("/orgs").text)
        assert one.post("/logout", data={"csrf_token": token}).status_code == 303
        assert two.get("/orgs").headers["location"].startswith("/login")
    with process(shared) as restarted:
        restarted.cookies.set("orgsync_session", cookie)
        assert restarted.get("/orgs").headers["location"].startswith("/login")


def test_a_new_password_voids_the_sessions_of_the_old_one(shared: Settings) -> None:
    with process(shared) as before:
        sign_in(before)
        cookie = before.cookies["orgsync_session"]
        assert before.get("/orgs").status_code == 200
    changed = dataclasses.replace(shared, web_password="another password, changed")
    with process(changed) as after:
        after.cookies.set("orgsync_session", cookie)
        assert after.get("/orgs").headers["location"].startswith("/login")
        assert sign_in(after, PASSWORD).status_code == 401


def test_password_sign_in_turned_off_refuses_the_password_and_its_sessions(
    shared: Settings,
) -> None:
    with process(shared) as before:
        sign_in(before)
        cookie = before.cookies["orgsync_session"]
    off = dataclasses.replace(
        shared,
        web_password_sign_in=False,
        oidc_issuer="http://127.0.0.1:9",
        oidc_client_id="c",
        oidc_client_secret="s",
    )
    with process(off) as after:
        assert 'name="password"' not in after.get("/login").text
        after.cookies.set("orgsync_session", cookie)
        assert after.get("/orgs").headers["location"].startswith("/login")


def test_a_removed_grant_ends_its_groups_sessions_in_every_process(
    shared: Settings, conn: Any, monkeypatch: Any, capsys: Any
) -> None:
    add_org(conn, "o-aaaaaaaaaa", "alpha")
    grant(conn, "auditors", "viewer", None)
    conn.commit()
    with process(shared) as one, process(shared) as two:
        as_user(one, conn, "ann", ["auditors"])
        two.cookies.set("orgsync_session", one.cookies["orgsync_session"])
        assert two.get("/orgs").status_code == 200
        assert run(shared, monkeypatch, capsys, "grants", "remove", "auditors")[0] == 0
        assert one.get("/orgs").headers["location"].startswith("/login")
        assert two.get("/orgs").headers["location"].startswith("/login")


def test_grants_are_added_listed_and_removed_from_the_command_line(
    shared: Settings, conn: Any, monkeypatch: Any, capsys: Any
) -> None:
    add_org(conn, "o-aaaaaaaaaa", "alpha")
    conn.commit()
    add = ("grants", "add", "sec-team", "--role", "operator", "--org", "alpha")
    assert run(shared, monkeypatch, capsys, *add)[0] == 0
    assert run(shared, monkeypatch, capsys, "grants", "add", "admins", "--role", "admin")[0] == 0
    code, out, _ = run(shared, monkeypatch, capsys, "grants", "list", "--json")
    shown = {(g["group"], g["role"], g["org_id"]) for g in json.loads(out)}
    assert shown == {("sec-team", "operator", "o-aaaaaaaaaa"), ("admins", "admin", None)}
    code, _, err = run(shared, monkeypatch, capsys, "grants", "remove", "sec-team")
    assert code == 2 and "no grant on every organization" in err  # it is on alpha
    assert (
        run(shared, monkeypatch, capsys, "grants", "remove", "sec-team", "--org", "alpha")[0] == 0
    )
    code, _, err = run(shared, monkeypatch, capsys, "grants", "add", "x", "--role", "root")
    assert code == 2 and "viewer, operator or admin" in err


def test_a_named_token_is_printed_once_listed_without_it_and_revoked_everywhere(
    shared: Settings, conn: Any, monkeypatch: Any, capsys: Any
) -> None:
    add_org(conn, "o-aaaaaaaaaa", "alpha")
    conn.commit()
    code, out, err = run(
        shared,
        monkeypatch,
        capsys,
        "tokens",
        "create",
        "dash",
        "--role",
        "viewer",
        "--org",
        "alpha",
    )
    assert code == 0 and out.count("\n") == 1 and out.startswith("osk_")
    token = out.strip()
    assert "viewer on o-aaaaaaaaaa" in err and token not in err
    stored = conn.execute("SELECT digest FROM api_tokens WHERE name = 'dash'").fetchone()
    assert token.encode() not in bytes(stored["digest"]) and len(bytes(stored["digest"])) == 32
    code, out, _ = run(shared, monkeypatch, capsys, "tokens", "list", "--json")
    (listed,) = json.loads(out)
    assert listed["name"] == "dash" and listed["role"] == "viewer" and listed["expires_at"]
    assert token not in out and "digest" not in listed
    again = run(shared, monkeypatch, capsys, "tokens", "create", "dash", "--role", "admin")
    assert again[0] == 2 and "exists" in again[2]

    auth = {"Authorization": f"Bearer {token}"}
    with process(shared) as one, process(shared) as two:
        assert one.get("/api/orgs", headers=auth).status_code == 200
        assert two.post("/api/syncs", json={"org": "alpha"}, headers=auth).status_code == 403
        assert run(shared, monkeypatch, capsys, "tokens", "revoke", "dash")[0] == 0
        assert one.get("/api/orgs", headers=auth).status_code == 401
        assert two.get("/api/orgs", headers=auth).status_code == 401


def test_an_expired_token_is_refused(
    shared: Settings, conn: Any, monkeypatch: Any, capsys: Any
) -> None:
    code, out, _ = run(
        shared,
        monkeypatch,
        capsys,
        "tokens",
        "create",
        "old",
        "--role",
        "admin",
        "--expires-in",
        "1h",
    )
    assert code == 0
    auth = {"Authorization": f"Bearer {out.strip()}"}
    with process(shared) as http:
        assert http.get("/api/orgs", headers=auth).status_code == 200
        conn.execute("UPDATE api_tokens SET expires_at = now() - interval '1 second'")
        conn.commit()
        assert http.get("/api/orgs", headers=auth).status_code == 401
    code, _, err = run(
        shared,
        monkeypatch,
        capsys,
        "tokens",
        "create",
        "x",
        "--role",
        "admin",
        "--expires-in",
        "0d",
    )
    assert code == 2 and "lifetime" in err


def test_a_provider_callback_without_the_state_the_console_sent_signs_nobody_in(
    shared: Settings,
) -> None:
    configured = dataclasses.replace(
        shared, oidc_issuer="http://127.0.0.1:9", oidc_client_id="c", oidc_client_secret="s"
    )
    with process(configured) as http:
        answer = http.get("/login/oidc/callback?code=stolen&state=forged")
        assert answer.status_code == 400 and "sign-in refused" in answer.text
        assert "orgsync_session" not in http.cookies
        assert http.get("/orgs").headers["location"].startswith("/login")
