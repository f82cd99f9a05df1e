"""Events for other systems: each committed change of the inventory as a CloudEvents 1.0 event.

The events are written by triggers in the transaction of their change (migration 0013,
table `outbound_events`); this module turns a stored row into the event's JSON, the same bytes
every time, so that every delivery of one change (to the exchange, to each webhook, on every
retry) carries the same `id` and body. `data.sequence` increases with each change of an account
in the order of their commits: a receiver orders an account's events by it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

EVENT_TYPES = (
    "orgsync.account.added",
    "orgsync.account.removed",
    "orgsync.account.moved",
    "orgsync.account.status_changed",
    "orgsync.account.badges_changed",
    "orgsync.sync.completed",
    "orgsync.organization.registered",
    "orgsync.organization.updated",
)
EXCHANGE = "orgsync.changes"  # a durable topic exchange; the routing key is the event's type
CONTENT_TYPE = "application/cloudevents+json"
STANDALONE = "standalone"  # the source of a standalone account's events: orgsync/standalone


def cloud_event(row: dict[str, Any]) -> dict[str, Any]:
    """The CloudEvent of an `outbound_events` row (seq, id, type, org_id, subject, data, at)."""
    at: datetime = row["at"]
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(row["id"]),
        "source": f"orgsync/{row['org_id'] or STANDALONE}",
        "type": row["type"],
        "time": at.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": {**row["data"], "sequence": row["seq"]},
    }
    if row["subject"] is not None:
        event["subject"] = row["subject"]
    return event


def encode(event: dict[str, Any]) -> bytes:
    """The event's body: compact JSON with sorted keys, so the same event is the same bytes."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
