"""The HTTP API: the bearer token, and the same JSON as the CLI's `--json` reads."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from jsonschema import Draft202012Validator
from psycopg.types.json import Jsonb
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.testclient import TestClient

from orgsync.services.commands import cli
from orgsync.services.settings import Settings
from orgsync.services.web.app import create_app
from tests.support.web import (
    HOSTILE,
    TOKEN,
    add_account,
    add_failure,
    add_feed,
    add_org,
    add_sync,
)

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api_settings(web_settings: Settings) -> Settings:
    return web_settings


@pytest.fixture
def api(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as http:
        yield http


@pytest.fixture
def inventory(conn: Any) -> None:
    add_org(conn, "o-aaaaaaaaaa", "alpha")
    add_org(conn, "o-bbbbbbbbbb", "beta")
    sync_id = add_sync(conn, "o-aaaaaaaaaa")
    add_account(
        conn,
        "100000000001",
        HOSTILE,
        "o-aaaaaaaaaa",
        tags={"env": "prod"},
        badges={"env": "prod", "system.cloud_organization": "o-aaaaaaaaaa"},
    )
    add_account(
        conn,
        "100000000002",
        "failing",
        "o-aaaaaaaaaa",
        status="assume_role_failed",
        sync_id=sync_id,
    )
    add_failure(conn, "100000000002", "o-aaaaaaaaaa", "denied")
    add_account(conn, "100000000003", "gone", "o-bbbbbbbbbb", status="removed")
    add_account(conn, "100000000004", "alone", None, badges={"owner": "me"})
    add_feed(conn, "o-aaaaaaaaaa", "100000000001")
    conn.execute(
        "INSERT INTO excluded_accounts (org_id, account_id, name, reason, sync_id)"
        " VALUES ('o-aaaaaaaaaa', '100000000009', 'sandbox-1', 'name_prefix:sandbox-', %s)",
        (sync_id,),
    )
    conn.execute(
        "INSERT INTO registrations (request_id, kind, request, accepted, reasons)"
        " VALUES ('r-1', 'register', '{}', false, %s)",
        (json.dumps([{"field": "nickname", "message": "taken"}]),),
    )
    conn.commit()


def cli_json(settings: Settings, monkeypatch: Any, capsys: Any, *args: str) -> Any:
    monkeypatch.setenv("ORGSYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ORGSYNC_BROKER_URL", settings.broker_url)
    capsys.readouterr()
    assert cli.main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_api_route_refuses_a_call_without_the_bearer_token(api: TestClient) -> None:
    for path in [
        "/api/orgs",
        "/api/accounts",
        "/api/failed",
        "/api/queues",
        "/api/registrations",
        "/api/syncs",
    ]:
        assert api.get(path).status_code == 401, path
        assert api.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert api.get(path, headers={"Authorization": TOKEN}).status_code == 401
    assert api.post("/api/registrations", json={}).status_code == 401
    assert api.post("/api/syncs", json={"org": "alpha"}).status_code == 401


def test_without_an_api_token_set_the_api_stays_shut(web_settings: Settings) -> None:
    with TestClient(create_app(dataclasses.replace(web_settings, api_token=None))) as http:
        assert http.get("/api/orgs", headers={"Authorization": "Bearer "}).status_code == 401


@pytest.mark.usefixtures("inventory")
@pytest.mark.parametrize(
    ("path", "command"),
    [
        ("/api/orgs", ["orgs"]),
        ("/api/accounts", ["accounts"]),
        ("/api/accounts?org=alpha", ["accounts", "--org", "alpha"]),
        ("/api/accounts?status=assume_role_failed", ["accounts", "--status", "assume_role_failed"]),
        ("/api/accounts?badge=env%3Dprod", ["accounts", "--badge", "env=prod"]),
        ("/api/accounts?include_removed=true", ["accounts", "--include-removed"]),
        (
            "/api/accounts?excluded=true&org=o-aaaaaaaaaa",
            ["accounts", "--excluded", "--org", "o-aaaaaaaaaa"],
        ),
        ("/api/failed", ["failed"]),
        ("/api/failed?org=beta", ["failed", "--org", "beta"]),
        ("/api/syncs", ["syncs"]),
        ("/api/syncs?org=alpha&limit=1", ["syncs", "--org", "alpha", "--limit", "1"]),
        ("/api/registrations", ["registrations"]),
        ("/api/accounts/100000000004/badges", ["badges", "100000000004"]),
        ("/api/queues", ["queues"]),
        ("/api/events", ["events"]),
        ("/api/events?org=alpha&limit=1", ["events", "--org", "alpha", "--limit", "1"]),
        ("/api/accounts/100000000001/badges?history=true", ["badges", "100000000001", "--history"]),
    ],
)
def test_every_api_read_answers_the_same_json_as_the_cli(
    api: TestClient,
    api_settings: Settings,
    monkeypatch: Any,
    capsys: Any,
    path: str,
    command: list[str],
) -> None:
    answer = api.get(path, headers=AUTH)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == cli_json(api_settings, monkeypatch, capsys, *command)
    assert answer.json() != [] or path.startswith("/api/failed?")
    route = re.sub(r"/accounts/[0-9]+/", "/accounts/{account_id}/", path.split("?")[0])
    conforms(api.get("/api/openapi.json").json(), route, answer.json())


def conforms(document: dict[str, Any], route: str, body: Any) -> None:
    """`body` is what the OpenAPI document says a GET of `route` answers."""
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:orgsync:openapi", resource)
    escaped = route.replace("~", "~0").replace("/", "~1")
    pointer = f"/paths/{escaped}/get/responses/200/content/application~1json/schema"
    validator = Draft202012Validator({"$ref": f"urn:orgsync:openapi#{pointer}"}, registry=registry)
    validator.validate(body)


@pytest.mark.usefixtures("inventory")
def test_the_account_listing_comes_a_page_at_a_time_with_a_link_to_the_next(
    api: TestClient,
) -> None:
    everything = api.get("/api/accounts?include_removed=true", headers=AUTH).json()
    assert len(everything) >= 3 and "link" not in api.get("/api/accounts", headers=AUTH).headers

    first = api.get("/api/accounts?include_removed=true&limit=2", headers=AUTH)
    assert first.json() == everything[:2]
    following = first.headers["link"]
    assert following.endswith('>; rel="next"') and "offset=2" in following
    second = api.get(following[1 : following.index(">")], headers=AUTH)
    assert second.json() == everything[2:4]

    for bad in ("limit=0", "limit=10001", "offset=-1", "limit=nan", "include_removed=maybe"):
        refused = api.get(f"/api/accounts?{bad}", headers=AUTH)
        assert refused.status_code == 400 and "error" in refused.json()


def test_the_openapi_document_types_every_parameter_and_answer(api: TestClient) -> None:
    document = api.get("/api/openapi.json").json()
    for route, methods in document["paths"].items():
        for method, operation in methods.items():
            success = next(v for k, v in operation["responses"].items() if k.startswith("2"))
            assert success["content"]["application/json"]["schema"], route
            for parameter in operation["parameters"]:
                assert parameter["schema"] != {"type": "string"} or parameter["name"] in (
                    "org",
                    "badge",
                    "account_id",
                ), (route, method, parameter["name"])
    flags = {
        p["name"]: p["schema"] for p in document["paths"]["/api/accounts"]["get"]["parameters"]
    }
    assert flags["include_removed"]["type"] == "boolean" and flags["limit"]["type"] == "integer"


def test_orgs_show_the_aws_rate_override_or_null(
    api: TestClient, api_settings: Settings, conn: Any, monkeypatch: Any, capsys: Any
) -> None:
    add_org(conn, "o-aaaaaaaaaa", "alpha")
    add_org(conn, "o-bbbbbbbbbb", "beta")
    override = {"*": {"floor": 1, "ceiling": 20}, "ListParents": {"floor": 0.5, "ceiling": 5}}
    conn.execute(
        "UPDATE organizations SET aws_rates = %s WHERE org_id = 'o-aaaaaaaaaa'", (Jsonb(override),)
    )
    conn.commit()

    shown = cli_json(api_settings, monkeypatch, capsys, "orgs")

    assert [o["filters"]["aws_rates"] for o in shown] == [override, None]
    assert api.get("/api/orgs", headers=AUTH).json() == shown
    assert cli.main(["orgs"]) == 0
    printed = capsys.readouterr().out
    assert "AWS rates *=1:20,ListParents=0.5:5" in printed
    assert printed.count("AWS rates ") == 1  # beta has no override
    assert max(len(line) for line in printed.splitlines()) <= 100
    assert not any(mark in printed for mark in ("{", "[", "'", "None"))  # no Python reprs


def test_bad_filters_get_a_clear_error(api: TestClient) -> None:
    assert api.get("/api/accounts?org=nobody", headers=AUTH).json() == {
        "error": "no organization 'nobody'"
    }
    assert api.get("/api/accounts?status=gone", headers=AUTH).status_code == 400
    assert api.get("/api/accounts?badge=novalue", headers=AUTH).status_code == 400


def test_a_registration_without_waiting_is_queued_as_the_cli_queues_it(
    web_settings: Settings, own_broker_url: str
) -> None:
    api_settings = dataclasses.replace(web_settings, broker_url=own_broker_url)
    with TestClient(create_app(api_settings)) as api:
        answer = api.post(
            "/api/registrations?wait=false",
            json={"request_id": "api-1", "nickname": "n"},
            headers=AUTH,
        )
        assert api.post("/api/registrations", content=b"[1]", headers=AUTH).status_code == 400
    assert answer.status_code == 202 and answer.json() == {"request_id": "api-1", "queued": True}
    connection = pika.BlockingConnection(pika.URLParameters(api_settings.broker_url))
    try:
        _method, _props, body = connection.channel().basic_get("org-registration", auto_ack=True)
    finally:
        connection.close()
    envelope = json.loads(body)
    assert envelope["args"] == [{"request_id": "api-1", "nickname": "n"}]
    assert envelope["message_id"] == "registration:api-1"


def test_the_openapi_document_describes_every_route(api: TestClient) -> None:
    document = api.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/api/orgs",
        "/api/accounts",
        "/api/accounts/{account_id}/badges",
        "/api/failed",
        "/api/events",
        "/api/queues",
        "/api/registrations",
        "/api/syncs",
        "/api/webhooks",
        "/api/webhooks/{webhook_id}",
        "/api/webhooks/{webhook_id}/deliveries",
        "/api/deliveries/{delivery_id}/redeliver",
        "/api/orgs/{org}/sync",
        "/api/orgs/{org}/retry-failed",
        "/api/audit",
    }
    schema = document["paths"]["/api/registrations"]["post"]["requestBody"]["content"]
    assert "org_role_arn" in schema["application/json"]["schema"]["properties"]


@pytest.mark.parametrize("timeout", ["nan", "inf", "-1", "1e999", "301", "9" * 400, "\u00b2"])
def test_a_registration_timeout_that_is_not_a_number_of_seconds_up_to_300_is_refused_at_once(
    api: TestClient, timeout: str
) -> None:
    answer = api.post(
        f"/api/registrations?timeout={timeout}", json={"request_id": "t-1"}, headers=AUTH
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "timeout must be a number of seconds from 0 to 300"}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"aws_rates": {"*": {"floor": NaN, "ceiling": 2}}}', "NaN is not a JSON number"),
        (b'{"sync_interval_seconds": Infinity}', "Infinity is not a JSON number"),
        (b'{"aws_rates": {"*": {"floor": 1e-300, "ceiling": 1e999}}}', "1e999 is too large"),
    ],
)
def test_a_registration_body_with_a_number_json_has_not_is_refused_naming_it(
    api: TestClient, body: bytes, words: str
) -> None:
    answer = api.post("/api/registrations?wait=false", content=body, headers=AUTH)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("the body must be the registration request, as JSON")
    assert words in answer.json()["error"]


@pytest.mark.parametrize("limit", ["-1", "0", "\u00b2", "99999999999999999999", "nan", "10001"])
def test_a_registrations_limit_outside_1_to_10000_is_refused(api: TestClient, limit: str) -> None:
    answer = api.get(f"/api/registrations?limit={limit}", headers=AUTH)
    assert answer.status_code == 400
    assert answer.json() == {"error": "limit must be a whole number from 1 to 10000"}
    assert api.get("/api/registrations?limit=10000", headers=AUTH).status_code == 200


@pytest.mark.usefixtures("inventory")
def test_orgsync_events_prints_each_feed_then_the_events_newest_first(
    api_settings: Settings, monkeypatch: Any, capsys: Any
) -> None:
    cli_json(api_settings, monkeypatch, capsys, "events")  # points the CLI at the test's services
    assert cli.main(["events", "--org", "alpha"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("alpha (o-aaaaaaaaaa) feed: orgsync-events, 2 events")
    assert printed[1].split() == ["HANDLED", "ORG", "EVENT", "ACCOUNT/OU", "OUTCOME", "REASON"]
    assert "rejected" in printed[2] and "the body is not JSON" in printed[2]
    assert "TagResource" in printed[3] and "100000000001" in printed[3] and "applied" in printed[3]
    assert printed[-1] == "2 event(s), newest first"


@pytest.mark.usefixtures("inventory")
def test_a_sync_started_through_the_api_says_its_mode_and_is_listed_with_it(
    api: TestClient, conn: Any
) -> None:
    full = api.post("/api/syncs", json={"org": "alpha"}, headers=AUTH)
    assert full.status_code == 202 and full.json()["mode"] == "full"
    started = api.post("/api/syncs", json={"org": "beta", "mode": "incremental"}, headers=AUTH)
    assert started.status_code == 202
    assert started.json()["org_id"] == "o-bbbbbbbbbb" and started.json()["mode"] == "incremental"
    listed = api.get("/api/syncs?org=beta", headers=AUTH).json()
    assert [(s["sync_id"], s["mode"], s["trigger"]) for s in listed] == [
        (started.json()["sync_id"], "incremental", "api")
    ]
    row = conn.execute(
        "SELECT payload FROM outbox WHERE queue_name = 'org-registered'"
        " AND payload->>'sync_id' = %s",
        (started.json()["sync_id"],),
    ).fetchone()
    assert row is not None  # its walk is on its way


@pytest.mark.usefixtures("inventory")
@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"org": "alpha", "mode": "partial"}, 400),
        ({"mode": "full"}, 400),
        ({"org": ["alpha"]}, 400),
        ({"org": "nobody"}, 404),
    ],
)
def test_a_sync_request_that_names_no_organization_or_mode_is_refused(
    api: TestClient, body: dict[str, Any], status: int
) -> None:
    answer = api.post("/api/syncs", json=body, headers=AUTH)
    assert answer.status_code == status and answer.json()["error"]


@pytest.mark.usefixtures("inventory")
def test_the_audit_listing_is_the_same_json_as_the_cli_and_its_schema(
    api: TestClient, api_settings: Settings, monkeypatch: Any, capsys: Any
) -> None:
    started = api.post("/api/orgs/alpha/sync", headers=AUTH, json={"mode": "incremental"})
    assert started.status_code == 202

    answer = api.get("/api/audit", headers=AUTH)

    assert answer.json() == cli_json(api_settings, monkeypatch, capsys, "audit")
    assert [row["action"] for row in answer.json()] == ["sync.start"]
    conforms(api.get("/api/openapi.json").json(), "/api/audit", answer.json())
