"""A registration's `request_id` is an idempotency key for what was asked.

The same request again (a redelivery, a publisher's retry) gets the first verdict; another
request under an id already used (a different body, another organization) is rejected with the
reason, and that verdict is stored under `conflict_id(request_id, digest)` so that its
publisher, who knows what it sent, finds it. The digest is a sha256 of the request id and the
request's canonical JSON: it identifies the request without storing any of its values, and the
request id in it keeps two rows with the same credentials from being linked by their digests.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import psycopg

from orgsync.pipelines.sql import load

SQL = load("orgsync.pipelines")


def request_digest(request_id: str, raw: object) -> str:
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{request_id}\0{canonical}".encode()).hexdigest()


def conflict_id(request_id: str, digest: str) -> str:
    return f"{request_id}~{digest[:16]}"


def stored_digest(conn: psycopg.Connection[dict[str, Any]], request_id: str) -> str | None:
    row = conn.execute(SQL["stored_request_digest"], (request_id,)).fetchone()
    return None if row is None else row["request_digest"]


def same_request(conn: psycopg.Connection[dict[str, Any]], request_id: str, digest: str) -> bool:
    """Whether the request decided under `request_id` is this one (rows from before the digest
    was stored count as the same: nothing tells them apart)."""
    return stored_digest(conn, request_id) in (None, digest)


def reuse_reason(request_id: str) -> str:
    return (
        f"request_id {request_id!r} was already used for a different request (another body or"
        " organization); that request's verdict stands: send this one with a new request_id"
    )
