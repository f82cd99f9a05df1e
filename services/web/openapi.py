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

START_SYNC = {
    "type": "object",
    "required": ["org"],
    "properties": {
        "org": {"type": "string", "description": "organization id or nickname"},
        "mode": {"enum": ["full", "incremental"], "default": "full"},
    },
}
SYNC_STARTED = {
    "type": "object",
    "required": ["sync_id", "org_id", "mode"],
    "properties": {
        "sync_id": {"type": "string"},
        "org_id": {"type": "string"},
        "mode": {"enum": ["full", "incremental"]},
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
        "/api/syncs": {
            **_get(
                "The latest syncs: trigger, mode, state, and what each sent down the stages",
                "orgsync syncs",
                [ORG, _query("limit", "how many, newest first: 1 to 10000 (default 20)")],
            ),
            "post": {
                "summary": "Start a sync of an organization, full or incremental",
                "description": "As `orgsync sync ORG [--incremental]`: a full sync sends every "
                "account down the stages, an incremental one only those new, changed, failed, "
                "or validated or harvested longer ago than ORGSYNC_REVALIDATE_AFTER / "
                "ORGSYNC_REHARVEST_AFTER.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": START_SYNC}},
                },
                "responses": {
                    "202": {
                        "description": "Started: the sync's id and the mode it runs in",
                        "content": {"application/json": {"schema": SYNC_STARTED}},
                    },
                    "400": {"description": "The body does not name an organization and a mode"},
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "404": {"description": "No such organization"},
                    "503": {"description": "RabbitMQ or PostgreSQL is unreachable"},
                },
            },
        },
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
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "responses": {"Unauthorized": {"description": "Missing or wrong bearer token"}},
    },
}
