"""Harvesting, stage 1 of auto-badging (account-validated → tags-harvested).

The account's tags come from Organizations ListTagsForResource and overwrite its stored
ResourceTags only when they differ; `tags-harvested` says whether they did.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from pipelines.events import AccountValidated, Event, TagsHarvested


class MalformedTags(ValueError):
    """ListTagsForResource answered with a tag that has no key."""


def fetch_tags(orgs: Any, account_id: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for page in orgs.get_paginator("list_tags_for_resource").paginate(ResourceId=account_id):
        for tag in page.get("Tags") or []:
            if not isinstance(tag, dict) or not isinstance(tag.get("Key"), str):
                raise MalformedTags(f"ListTagsForResource({account_id}) returned a tag without Key")
            tags[tag["Key"]] = str(tag.get("Value") or "")
    return tags


def stored_tags(
    conn: psycopg.Connection[dict[str, Any]], event: AccountValidated
) -> dict[str, str] | None:
    """The stored tags, or None when this sync already harvested the account (or moved on)."""
    row = conn.execute(
        "SELECT tags FROM accounts WHERE account_id = %s AND sync_id = %s AND stage = 'validated'",
        (event.account_id, event.sync_id),
    ).fetchone()
    return None if row is None else dict(row["tags"])


STORE = """
UPDATE accounts SET tags = %s, stage = 'harvested', stage_at = now(), updated_at = now()
WHERE account_id = %s AND sync_id = %s AND stage = 'validated'
RETURNING account_id
"""


def store_tags(
    conn: psycopg.Connection[dict[str, Any]],
    event: AccountValidated,
    old: dict[str, str],
    new: dict[str, str],
) -> list[Event]:
    changed = old != new
    stored = conn.execute(
        STORE, (Jsonb(new if changed else old), event.account_id, event.sync_id)
    ).fetchone()
    if stored is None:
        return []
    return [
        TagsHarvested(
            org_id=event.org_id, sync_id=event.sync_id, account_id=event.account_id, changed=changed
        )
    ]
