"""The audit trail: who changed what, when, through which door, and what the change was.

Every change made on a person's (or a program's) request — through the console, the API, the
CLI or the `org-registration` queue — calls `record` on the connection that makes the change,
inside its transaction, so the row commits with the change and rolls back with it. The actor is
named as pipelines/access.py names it: `user:<subject>`, `token:<name>`, `cli:<os user>`,
`amqp:<broker user>`. `changes` holds the fields changed, old -> new where that means something,
and never a secret's value: `secret_changed` stands in for credentials, external ids and
webhook secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from psycopg.types.json import Jsonb

from orgsync.pipelines.access import Actor
from orgsync.pipelines.sql import load
from orgsync.pipelines.stage import Conn

SQL = load("orgsync.pipelines")

VIAS = ("console", "api", "cli", "amqp")
UNKNOWN_BROKER_USER = "amqp:unknown"  # a queued request whose publisher set no AMQP user_id
SECRET = "[secret changed]"  # what the trail shows for a secret that was set or replaced
# the names under which a value is a secret's, whatever action carries them
SECRET_FIELDS = frozenset(
    {"external_id", "secret", "credentials", "token", "password", "client_secret"}
)
MAX_TEXT = 300


@dataclass(frozen=True)
class By:
    """Who asks for a change and through which door: what the use cases pass down."""

    actor: Actor | str
    via: str

    def __post_init__(self) -> None:
        if self.via not in VIAS:
            raise ValueError(f"no door {self.via!r}: {', '.join(VIAS)}")

    def record(
        self,
        conn: Conn,
        action: str,
        org_id: str | None = None,
        changes: Mapping[str, Any] | None = None,
        *,
        subject: str | None = None,
    ) -> None:
        """`record` with this actor and door."""
        record(conn, self.actor, self.via, action, org_id, changes, subject=subject)


# a queued request that names no one, from a publisher that set no AMQP user_id
NOBODY_KNOWN = By(UNKNOWN_BROKER_USER, "amqp")


def record(
    conn: Conn,
    actor: Actor | str,
    via: str,
    action: str,
    org_id: str | None = None,
    changes: Mapping[str, Any] | None = None,
    *,
    subject: str | None = None,
    broker_user: str | None = None,
) -> None:
    """Write one audit row on `conn`, in the transaction of the change it describes.

    Call it after the change succeeded and before the transaction commits (inside the same
    `with conn.transaction()` block, or on the same non-autocommit connection): if the change
    or anything after it fails, the row rolls back with it.

    - `actor`: an `access.Actor`, or its text (`user:alice`, `token:ci`, `cli:root`,
      `amqp:orgsync`);
    - `via`: `console`, `api`, `cli` or `amqp`;
    - `action`: a dotted lower-case name, `organization.register`, `webhook.add`, `token.create`;
    - `org_id`: the organization the change concerns, None when it concerns none (or all);
    - `changes`: field -> new value, or field -> {"old": ..., "new": ...}; a field named in
      SECRET_FIELDS is stored as SECRET, whatever the value, so a caller cannot leak one;
    - `subject`: what else the change is about (an account, a webhook, a delivery, a sync);
    - `broker_user`: the AMQP user_id RabbitMQ vouched for, on the queue's path.
    """
    if via not in VIAS:
        raise ValueError(f"no door {via!r}: {', '.join(VIAS)}")
    conn.execute(
        SQL["record_audit"],
        {
            "actor": str(actor)[:MAX_TEXT],
            "via": via,
            "broker_user": broker_user[:MAX_TEXT] if broker_user else None,
            "action": action,
            "org_id": org_id,
            "subject": subject[:MAX_TEXT] if subject else None,
            "changes": Jsonb(without_secrets(changes or {})),
        },
    )


def without_secrets(changes: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: SECRET if name in SECRET_FIELDS and value is not None else value
        for name, value in changes.items()
    }


def shown_url(url: str) -> str:
    """A URL as the trail may keep it: no user, password, query or fragment, where a receiver's
    token may sit."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def old_new(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The fields whose value differs, as {"old": ..., "new": ...} (old None: it was unset)."""
    return {
        name: {"old": old.get(name), "new": value}
        for name, value in new.items()
        if old.get(name) != value
    }


def trail(
    conn: Conn,
    org_id: str | None = None,
    limit: int = 100,
    before: int | None = None,
    org_ids: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    """The newest rows first; `before` an audit id to page back from, `org_ids` the only
    organizations a reader may see (None: all)."""
    params = {
        "org_id": org_id,
        "org_ids": None if org_ids is None else sorted(org_ids),
        "before": before,
        "limit": limit,
    }
    return conn.execute(SQL["audit_trail"], params).fetchall()
