"""A registration's verdict: accepted or rejected with every reason, stored once per request id.

The publisher looks its verdict up by its `request_id`; a verdict is never stored twice (a
redelivered request finds the first one), and a request id used again for another request gets
a verdict of its own under a derived key (pipelines.idempotency).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from orgsync.pipelines.idempotency import conflict_id, reuse_reason
from orgsync.pipelines.request_rules import Problem


@dataclass(frozen=True, kw_only=True)
class Verdict:
    request_id: str
    accepted: bool
    org_id: str | None
    reasons: list[Problem]
    warnings: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "accepted": self.accepted,
            "org_id": self.org_id,
            "reasons": [asdict(p) for p in self.reasons],
            "warnings": self.warnings,
        }


RECORD = """
INSERT INTO registrations
    (request_id, org_id, kind, request, decided_at, accepted, reasons, warnings, request_digest)
VALUES (%s, %s, %s, %s, now(), %s, %s, %s, %s)
ON CONFLICT (request_id) DO NOTHING
"""


def decided(conn: psycopg.Connection[dict[str, Any]], request_id: str) -> Verdict | None:
    row = conn.execute(
        "SELECT request_id, org_id, accepted, reasons, warnings FROM registrations"
        " WHERE request_id = %s AND decided_at IS NOT NULL",
        (request_id,),
    ).fetchone()
    if row is None:
        return None
    return Verdict(
        request_id=row["request_id"],
        accepted=row["accepted"],
        org_id=row["org_id"],
        reasons=[Problem(**p) for p in row["reasons"]],
        warnings=row["warnings"],
    )


def record(
    conn: psycopg.Connection[dict[str, Any]],
    verdict: Verdict,
    kind: str,
    request: dict[str, Any],
    digest: str | None = None,
) -> Verdict:
    conn.execute(
        RECORD,
        (
            verdict.request_id,
            verdict.org_id,
            kind,
            Jsonb(request),
            verdict.accepted,
            Jsonb([asdict(p) for p in verdict.reasons]),
            Jsonb(verdict.warnings),
            digest,
        ),
    )
    return verdict


def reused(conn: psycopg.Connection[dict[str, Any]], request_id: str, digest: str) -> Verdict:
    key = conflict_id(request_id, digest)
    if (earlier := decided(conn, key)) is not None:
        return earlier
    verdict = Verdict(
        request_id=key,
        accepted=False,
        org_id=None,
        reasons=[Problem("request_id", reuse_reason(request_id))],
        warnings=[],
    )
    return record(conn, verdict, "malformed", {"reused_request_id": request_id}, digest)


def reject_malformed(
    conn: psycopg.Connection[dict[str, Any]],
    request_id: str,
    raw: object,
    problems: list[Problem],
    digest: str | None = None,
) -> Verdict:
    # never the values: a malformed request may still carry credentials
    # and field names escaped: PostgreSQL text cannot hold NUL, logs should not hold newlines
    shape = (
        {"fields": sorted(k if k.isprintable() else ascii(k) for k in map(str, raw))}
        if isinstance(raw, dict)
        else {"type": type(raw).__name__}
    )
    verdict = Verdict(
        request_id=request_id, accepted=False, org_id=None, reasons=problems, warnings=[]
    )
    return record(conn, verdict, "malformed", shape, digest)
