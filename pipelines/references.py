"""Does an event name things that exist? Checked before a stage acts on it.

An event is well-formed JSON with the right fields and still names an organization, a sync or
an account that is not there (a hand-written message, a database restored from an older
backup). Such an event is recorded as rejected with the reason, rather than skipped in
silence or, worse, acted on: discovery would walk an organization into a sync that does not
exist.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from pipelines.events import Event

LOOKUP = """
SELECT EXISTS (SELECT 1 FROM organizations WHERE org_id = %(org)s) AS org,
       (SELECT org_id FROM syncs WHERE sync_id = %(sync)s) AS sync_org,
       (SELECT org_id FROM accounts WHERE account_id = %(account)s) AS account_org,
       EXISTS (SELECT 1 FROM accounts WHERE account_id = %(account)s) AS account
"""


def unknown(conn: psycopg.Connection[dict[str, Any]], event: Event) -> str | None:
    """Why `event` names something that does not exist; None when everything it names does."""
    try:
        sync_id = uuid.UUID(event.sync_id)
    except ValueError:
        return f"sync_id {_quote(event.sync_id)} is not a UUID"
    account_id = getattr(event, "account_id", None)
    row = conn.execute(
        LOOKUP, {"org": event.org_id, "sync": sync_id, "account": account_id}
    ).fetchone()
    assert row is not None
    if not row["org"]:
        return f"no organization {_quote(event.org_id)}"
    if row["sync_org"] is None:
        return f"no sync {event.sync_id}"
    if row["sync_org"] != event.org_id:
        return f"sync {event.sync_id} belongs to another organization"
    if account_id is None:
        return None
    if not row["account"]:
        return f"no account {_quote(account_id)}"
    if row["account_org"] != event.org_id:
        return f"account {_quote(account_id)} is not in organization {_quote(event.org_id)}"
    return None


def _quote(value: str) -> str:
    return ascii(value[:40]) + ("..." if len(value) > 40 else "")
