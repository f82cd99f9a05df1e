"""Webhooks, as an administrator manages them from the command line, the console or the API:
add (the secret sealed like every credential), list, remove, their deliveries, redeliver."""

from __future__ import annotations

import secrets
from typing import Any

import psycopg

from orgsync.pipelines import audit, webhooks
from orgsync.pipelines.audit import By
from orgsync.pipelines.credentials import Keyring, Sealed, decrypt, encrypt
from orgsync.pipelines.sql import load
from orgsync.services.errors import UserError

SQL = load("orgsync.services.use_cases")
Conn = psycopg.Connection[dict[str, Any]]
DELIVERY_STATES = ("pending", "delivered", "failed")


def bound_to(webhook_id: str) -> str:
    return f"webhook:{webhook_id}"  # services/adapters/keys.py reseals it on rotation


def secret_key(keyring: Keyring, row: dict[str, Any]) -> bytes:
    """The key of a webhook's secret, from its row (`credentials_key_id`, `credentials`)."""
    sealed = Sealed(row["credentials_key_id"], bytes(row["credentials"]))
    secret = decrypt(keyring, sealed, bound_to=bound_to(row["webhook_id"])).decode()
    return webhooks.parse_secret(secret)


def add(
    conn: Conn,
    keyring: Keyring,
    url: str,
    secret: str,
    org_id: str | None = None,
    types: list[str] | None = None,
    by: By | None = None,
) -> str:
    """A new webhook's id; raises UserError with every reason it cannot be added."""
    reasons = []
    if problem := webhooks.url_problem(url):
        reasons.append(problem)
    try:
        webhooks.parse_secret(secret)
    except webhooks.SecretError as error:
        reasons.append(str(error))
    if reasons:
        raise UserError("; ".join(reasons))
    webhook_id = f"wh_{secrets.token_hex(6)}"
    sealed = encrypt(keyring, secret.strip().encode(), bound_to=bound_to(webhook_id))
    with conn.transaction():
        values = (webhook_id, url, org_id, types, sealed.key_id, sealed.blob)
        conn.execute(SQL["add_webhook"], values)
        if by is not None:
            added = {"url": audit.shown_url(url), "types": types, "secret": audit.SECRET}
            by.record(conn, "webhook.add", org_id, added, subject=webhook_id)
    return webhook_id


def listing(conn: Conn, org_id: str | None = None) -> list[dict[str, Any]]:
    return conn.execute(SQL["list_webhooks"], {"org": org_id}).fetchall()


def remove(conn: Conn, webhook_id: str, by: By | None = None) -> bool:
    with conn.transaction():
        row = conn.execute(SQL["remove_webhook"], (webhook_id,)).fetchone()
        if row is not None and by is not None:
            by.record(
                conn,
                "webhook.remove",
                row["org_id"],
                {"url": audit.shown_url(row["url"])},
                subject=webhook_id,
            )
    return row is not None


def deliveries(
    conn: Conn, webhook_id: str, state: str | None = None, limit: int = 100
) -> list[dict[str, Any]] | None:
    """The webhook's latest deliveries, newest event first; None for an unknown webhook."""
    if conn.execute(SQL["webhook_exists"], (webhook_id,)).fetchone() is None:
        return None
    params = {"webhook": webhook_id, "state": state, "limit": limit}
    return conn.execute(SQL["webhook_deliveries"], params).fetchall()


def redeliver(conn: Conn, delivery_id: int, by: By | None = None) -> str | None:
    """Send a delivery again (same id and body); its webhook's id, None when there is none."""
    with conn.transaction():
        row = conn.execute(SQL["redeliver"], (delivery_id,)).fetchone()
        if row is not None and by is not None:
            again = {"delivery_id": delivery_id, "webhook_id": row["webhook_id"]}
            by.record(conn, "webhook.redeliver", row["org_id"], again, subject=str(delivery_id))
    return None if row is None else str(row["webhook_id"])
