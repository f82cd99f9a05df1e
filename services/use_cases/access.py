"""Grants and named API tokens, as an administrator manages them (`orgsync grants`, `orgsync
tokens`) and as the API finds the actor behind a bearer token.

A token is `osk_` and 32 random bytes (base64url): only its SHA-256 is stored. A fast hash is
right here, unlike for a password: a password is guessed from a small space, so it needs a slow,
salted hash, but a 256-bit random token cannot be guessed, so one SHA-256 already makes a leaked
table useless; and it lets the API find a token by its digest with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import psycopg

from orgsync.pipelines.access import Actor, Grant, Role, token_name_problem
from orgsync.pipelines.sql import load
from orgsync.services.errors import UserError

SQL = load("orgsync.services.use_cases")
Conn = psycopg.Connection[dict[str, Any]]
PREFIX = "osk_"  # lets secret scanners find a leaked token


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create_token(
    conn: Conn, name: str, role: Role, org_id: str | None, lifetime: float | None
) -> tuple[str, Any]:
    """A new token (shown once, never stored) and when it expires (None: never)."""
    if problem := token_name_problem(name):
        raise UserError(problem)
    token = PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        SQL["add_token"], (name, digest(token), str(role), org_id, lifetime)
    ).fetchone()
    if row is None:
        raise UserError(f"a token named {name!r} exists; revoke it first or choose another name")
    return token, row["expires_at"]


def list_tokens(conn: Conn) -> list[dict[str, Any]]:
    return conn.execute(SQL["list_tokens"]).fetchall()


def revoke_token(conn: Conn, name: str) -> bool:
    return conn.execute(SQL["revoke_token"], (name,)).fetchone() is not None


def token_actor(conn: Conn, token: str) -> Actor | None:
    """The actor a bearer token stands for; None for a token unknown, revoked or expired."""
    if not token.startswith(PREFIX) or len(token) > 100:
        return None
    key = digest(token)
    row = conn.execute(SQL["token_by_digest"], (key,)).fetchone()
    row = row or conn.execute(SQL["token_by_digest_read"], (key,)).fetchone()
    if row is None or row["expired"]:
        return None
    return Actor("token", row["name"], (Grant(Role.parse(row["role"]), row["org_id"]),))


def add_grant(conn: Conn, group: str, role: Role, org_id: str | None) -> None:
    group = group.strip()
    if not 0 < len(group) <= 256:
        raise UserError("a group name is 1-256 characters, as the identity provider sends it")
    conn.execute(SQL["add_grant"], (group, str(role), org_id))


def list_grants(conn: Conn) -> list[dict[str, Any]]:
    return conn.execute(SQL["list_grants"]).fetchall()


def remove_grant(conn: Conn, group: str, org_id: str | None) -> bool:
    return conn.execute(SQL["remove_grant"], (group, org_id)).fetchone() is not None
