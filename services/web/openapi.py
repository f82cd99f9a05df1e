"""The OpenAPI 3.1 document of /api/, served at /api/openapi.json.

The registration request's schema is the one in schema/messages/, so the two cannot drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parents[2] / "schema" / "messages" / "registration_request.json"


def _request_schema() -> dict[str, Any]:
    if not SCHEMA.exists():  # installed without the source tree: the shape only
        return {"type": "object"}
    schema = json.loads(SCHEMA.read_text())
    return {k: v for k, v in schema.items() if not k.startswith("$")}


def _get(summary: str, cli: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "description": f"The same JSON as `{cli} --json`.",
            "parameters": params or [],
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {}}},
                "401": {"$ref": "#/components/responses/Unauthorized"},
            },
        }
    }


def _query(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": "string"}, "description": description}


ORG = _query("org", "organization id or nickname (404 when unknown)")
VERDICT = {
    "type": "object",
    "required": ["request_id", "accepted", "org_id", "reasons", "warnings"],
    "properties": {
        "request_id": {"type": "string"},
        "accepted": {"type": "boolean"},
        "org_id": {"type": ["string", "null"]},
        "reasons": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _call(summary: str, description: str, answers: dict[str, str], **extra: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {code: {"description": text} for code, text in answers.items()}
    return {
        "summary": summary,
        "description": description,
        **extra,
        "responses": {**responses, "401": {"$ref": "#/components/responses/Unauthorized"}},
    }


NEW_WEBHOOK = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "description": "http(s); link-local and metadata refused"},
        "secret": {"type": "string", "description": "whsec_ and base64; made when missing"},
        "org": {"type": "string", "description": "only this organization's events"},
        "types": {"type": "array", "items": {"type": "string"}, "description": "default all"},
    },
}
WEBHOOKS: dict[str, Any] = {
    "/api/webhooks": {
        **_get("Webhooks and their deliveries by state", "orgsync webhooks list"),
        "post": _call(
            "Add a webhook",
            "As `orgsync webhooks add`; answers its id, and its secret when it made one.",
            {"201": "webhook_id (and secret, shown once)", "400": "Why it cannot be added"},
            requestBody={
                "required": True,
                "content": {"application/json": {"schema": NEW_WEBHOOK}},
            },
        ),
    },
    "/api/webhooks/{webhook_id}": {
        "delete": _call(
            "Remove a webhook",
            "As `orgsync webhooks remove`.",
            {"200": "Removed", "404": "No such webhook"},
            parameters=[_path("webhook_id")],
        )
    },
    "/api/webhooks/{webhook_id}/deliveries": _get(
        "A webhook's latest deliveries, newest event first",
        "orgsync webhooks deliveries ID",
        [
            _path("webhook_id"),
            _query("state", "pending, delivered or failed"),
            _query("limit", "1 to 10000 (default 100)"),
        ],
    ),
    "/api/deliveries/{delivery_id}/redeliver": {
        "post": _call(
            "Send a delivery again: the same id and body",
            "As `orgsync webhooks redeliver`.",
            {"202": "Pending again", "404": "No such delivery"},
            parameters=[_path("delivery_id")],
        )
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "orgsync HTTP API",
        "version": "1",
        "description": "The CLI's --json reads and the registration request, over HTTP. "
        "Every route but this document takes Authorization: Bearer $ORGSYNC_API_TOKEN.",
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/orgs": _get("Organizations, filters, account counts, last sync", "orgsync orgs"),
        "/api/accounts": _get(
            "The cloud listing",
            "orgsync accounts",
            [
                ORG,
                _query("status", "pending, ok, assume_role_failed, suspended or removed"),
                _query("badge", "KEY=VALUE: only accounts carrying this badge"),
                _query("include_removed", "true: also removed accounts"),
                _query("excluded", "true: what discovery saw but did not import, and why"),
            ],
        ),
        "/api/accounts/{account_id}/badges": _get(
            "An account's badges (or their history)",
            "orgsync badges ACCOUNT_ID [--history]",
            [
                {
                    "name": "account_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                },
                _query("history", "true: every change, with its sync id"),
            ],
        ),
        "/api/failed": _get("Failed validations", "orgsync failed", [ORG]),
        "/api/queues": _get("Each queue's depth and consumers", "orgsync queues"),
        "/api/registrations": {
            **_get(
                "Registration requests and their verdicts",
                "orgsync registrations",
                [_query("limit", "how many, newest first: 1 to 10000 (default 50)")],
            ),
            "post": {
                "summary": "Register or update an organization; answers the verdict",
                "description": "Publishes the request to org-registration, as `orgsync "
                "register` does, and waits for the registrar's verdict (request_id is made "
                "when missing). wait=false answers 202 once it is queued.",
                "parameters": [
                    _query("wait", "false: answer once queued (202)"),
                    _query("timeout", "seconds to wait for the verdict, 0 to 300 (default 60)"),
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _request_schema()}},
                },
                "responses": {
                    "200": {
                        "description": "The verdict, accepted or not",
                        "content": {"application/json": {"schema": VERDICT}},
                    },
                    "202": {"description": "Queued (wait=false)"},
                    "400": {"description": "The body is not a JSON object"},
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "503": {"description": "RabbitMQ or PostgreSQL is unreachable"},
                    "504": {"description": "No verdict within the timeout: is a worker running?"},
                },
            },
        },
        **WEBHOOKS,
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "responses": {"Unauthorized": {"description": "Missing or wrong bearer token"}},
    },
}
