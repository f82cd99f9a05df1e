"""What a sync sends down the stages (issue 26), pure: every account (`full`), or only those
that need it (`incremental`).

Both modes walk the whole tree and store every account the walk sees, so removals follow the
rules of a complete walk either way. An incremental sync then sends an account down the stages
only when the walk or its stored row gives a reason (`why`), checked in this order:

- `new`: never stored, stored for another organization, or removed before (it joined again,
  came back in scope, or an exclusion was lifted);
- `changed`: its name, email, AWS state, OU path or parent differ from what is stored;
- `failed`: its last validation failed (or never finished: still `pending`);
- `unfinished`: its last sync (or change event) had not finished with it when this walk came;
- `revalidate`: validated longer ago than ORGSYNC_REVALIDATE_AFTER (or never);
- `reharvest`: its tags were read longer ago than ORGSYNC_REHARVEST_AFTER (or never); such an
  account goes straight to the harvester: its role was checked recently enough.

An account with none of these reasons is marked as through every stage of this sync at once. A
full sync sends every account, with its reason when it has one and `full` otherwise, so the
counts of either mode say why work was done. A suspended account never goes to validation (it
has no role to assume): it goes to the harvester, as in a full sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from orgsync.pipelines.account_state import AccountStatus, StageMark
from orgsync.pipelines.discovery_decisions import ImportDecision
from orgsync.pipelines.discovery_walk import SeenAccount

FULL = "full"
INCREMENTAL = "incremental"
MODES = (FULL, INCREMENTAL)
# ORGSYNC_REVALIDATE_AFTER and ORGSYNC_REHARVEST_AFTER (services/settings.py), in seconds
DEFAULT_REVALIDATE_AFTER = 86400.0
DEFAULT_REHARVEST_AFTER = 86400.0
# a feed that answered within this long is healthy: its organization's scheduled syncs can be
# incremental, since a change's event reaches orgsync within seconds
FEED_HEALTHY_WITHIN_S = 300.0

Stage = Literal["validation", "harvest"]
COMPARED = ("name", "email", "aws_state", "org_path", "parent_id")


class Reason(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    FAILED = "failed"
    UNFINISHED = "unfinished"
    REVALIDATE = "revalidate"
    REHARVEST = "reharvest"
    FULL = "full"  # a full sync sends an account that has no other reason


@dataclass(frozen=True)
class Stored:
    """An account's row as the walk finds it; the two ages are judged by PostgreSQL's clock."""

    org_id: str | None
    name: str
    email: str | None
    aws_state: str | None
    org_path: str | None
    parent_id: str | None
    status: str
    stage: str | None
    sync_id: str | None
    validation_old: bool  # validated longer ago than ORGSYNC_REVALIDATE_AFTER, or never
    tags_old: bool  # tags read longer ago than ORGSYNC_REHARVEST_AFTER, or never

    @classmethod
    def of(cls, row: dict[str, Any]) -> Stored:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Route:
    """Where an imported account goes: the first stage it is sent to, and why; `stage` None
    when it is not sent (it is through this sync already)."""

    stage: Stage | None
    reason: Reason | None


NOT_SENT = Route(None, None)


def why(seen: SeenAccount, stored: Stored | None, org_id: str, suspended: bool) -> Reason | None:
    """The first reason (module docstring) an incremental sync has to send this account."""
    if stored is None or stored.org_id != org_id or stored.status == AccountStatus.REMOVED:
        return Reason.NEW
    if any(getattr(seen, name) != getattr(stored, name) for name in COMPARED):
        return Reason.CHANGED
    if stored.status in (AccountStatus.ASSUME_ROLE_FAILED, AccountStatus.PENDING):
        return Reason.FAILED
    if stored.stage != StageMark.RECONCILED:
        return Reason.UNFINISHED
    if stored.validation_old and not suspended:
        return Reason.REVALIDATE
    if stored.tags_old:
        return Reason.REHARVEST
    return None


def route(
    seen: SeenAccount,
    decision: ImportDecision,
    stored: Stored | None,
    *,
    org_id: str,
    sync_id: str,
    mode: str,
) -> Route:
    """Where an account the walk imported (or keeps as suspended) goes in a sync of `mode`."""
    if stored is not None and stored.sync_id == sync_id:
        return NOT_SENT  # a repeated walk of the same sync: it was sent (or not) the first time
    suspended = decision.action == "suspend"
    first: Stage = "harvest" if suspended else "validation"
    reason = why(seen, stored, org_id, suspended)
    if reason is None:
        return Route(first, Reason.FULL) if mode == FULL else NOT_SENT
    return Route("harvest" if reason is Reason.REHARVEST else first, reason)


def scheduled_mode(feed_healthy: bool) -> str:
    """The mode of a sync the scheduler starts: incremental for an organization whose
    change-event feed is configured and answered within FEED_HEALTHY_WITHIN_S, full otherwise
    (as every sync was before)."""
    return INCREMENTAL if feed_healthy else FULL
