"""The events that flow between the stages, one queue each, named after the event it carries.

Messages carry ids only, never credentials or whole objects. An account event carries a *page*:
up to `PAGE_MAX` account ids of one organization and one sync, so a stage does its SQL
set-based and its AWS calls concurrently, and a sync costs one message per page and stage
instead of one per account. Each event knows its queue, the actor that consumes it and a
deterministic message id, so a stage that runs twice emits the same message twice and the
consumer recognises it. `STAGES` is the one table of the stages that the CLI, the metrics and
the exporter derive their names from.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar, TypeVar

from orgsync.pipelines import schemas

REGISTRATION_QUEUE = "org-registration"
REGISTRATION_ACTOR = "register_organization"
PAGE_MAX = 50  # account ids per event: a couple of AWS discovery pages (20 accounts each)
# Work someone waits on now (an organization's first sync, change events, retry-failed) travels
# in the live lane: served before bulk re-sync pages, with a reserved share of the AWS budget.
LIVE, BULK = "live", "bulk"

ORG_ID = re.compile(r"o-[a-z0-9]{10,32}")  # what a nickname must not look like (nicknames.py)


class MalformedEvent(ValueError):
    """A message body that is not the event its queue carries."""


@dataclass(frozen=True, kw_only=True)
class Event:
    queue: ClassVar[str]
    actor: ClassVar[str]

    org_id: str
    sync_id: str
    lane: str = BULK

    @property
    def message_id(self) -> str:
        raise NotImplementedError

    def payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls: type[E], payload: object) -> E:
        """The event in `payload`, or MalformedEvent naming every problem.

        Checked against the event's JSON Schema in schema/messages/ (named after its queue);
        nothing from the broker reaches PostgreSQL before it holds."""
        if not isinstance(payload, dict):
            raise MalformedEvent(f"expected a JSON object, got {type(payload).__name__}")
        if problems := payload_problems(cls.queue.replace("-", "_"), payload):
            raise MalformedEvent("; ".join(problems))
        values: dict[str, Any] = {
            k: tuple(v) if k == "account_ids" else v for k, v in payload.items()
        }
        return cls(**values)


E = TypeVar("E", bound=Event)
P = TypeVar("P", bound="AccountPage")


def payload_problems(schema: str, payload: dict[str, Any]) -> list[str]:
    """Unknown fields, then each field's first problem (or its absence) in the schema's order."""
    found = schemas.errors(schema, payload)
    properties: dict[str, Any] = schemas.validator(schema).schema["properties"]
    problems = [f"unknown field {schemas.quote(k)}" for k in payload if k not in properties]
    for name in properties:
        if name not in payload:
            required = any(e.validator == "required" and name in e.validator_value for e in found)
            problems += [f"missing field {name!r}"] if required else []
        elif mine := [e for e in found if e.path and e.path[0] == name]:
            problems.append(schemas.describe(mine[0]))
    return problems


def page_key(account_ids: Iterable[str]) -> str:
    """A short name for a set of accounts: the same page gets the same message id."""
    return hashlib.sha256(",".join(sorted(account_ids)).encode()).hexdigest()[:16]


def paged(account_ids: Sequence[str], size: int = PAGE_MAX) -> Iterator[tuple[str, ...]]:
    for start in range(0, len(account_ids), size):
        yield tuple(account_ids[start : start + size])


@dataclass(frozen=True, kw_only=True)
class OrgRegistered(Event):
    """A sync of an organization starts: emitted on registration, update, schedule and demand."""

    queue: ClassVar[str] = "org-registered"
    actor: ClassVar[str] = "discover_accounts"

    @property
    def message_id(self) -> str:
        return f"org-registered:{self.sync_id}"


@dataclass(frozen=True, kw_only=True)
class AccountPage(Event):
    """A page of accounts of one organization and one sync, waiting for the next stage.

    `attempt` counts this stage's tries for these accounts (a transient AWS error sends the
    accounts it hit round again as a smaller page); `redrive` is `0`, or the token of an
    `orgsync retry-failed` run, so a re-drive is a new message with a fresh budget."""

    account_ids: tuple[str, ...]
    attempt: int = 1
    redrive: str = "0"

    def payload(self) -> dict[str, Any]:
        return {**asdict(self), "account_ids": list(self.account_ids)}

    def retried(self: P, account_ids: Sequence[str]) -> P:
        """These of the page's accounts, as a page of their own for this stage's next try."""
        return replace(self, account_ids=tuple(account_ids), attempt=self.attempt + 1)

    @property
    def message_id(self) -> str:
        page = page_key(self.account_ids)
        return f"{self.queue}:{self.sync_id}:{page}:{self.redrive}:{self.attempt}"


@dataclass(frozen=True, kw_only=True)
class AccountsDiscovered(AccountPage):
    """Discovery imported these in-scope, active accounts; they wait for validation."""

    queue: ClassVar[str] = "account-discovered"
    actor: ClassVar[str] = "validate_account"


@dataclass(frozen=True, kw_only=True)
class AccountsValidated(AccountPage):
    """The member role was tried (or skipped for suspended accounts); tags come next."""

    queue: ClassVar[str] = "account-validated"
    actor: ClassVar[str] = "harvest_tags"


@dataclass(frozen=True, kw_only=True)
class TagsHarvested(AccountPage):
    """The accounts' ResourceTags are stored; their badges come next."""

    queue: ClassVar[str] = "tags-harvested"
    actor: ClassVar[str] = "reconcile_badges"


@dataclass(frozen=True)
class Stage:
    """One stage: its name (logs, metrics, `orgsync worker --stages`), what it consumes, and
    the `accounts.stage` value of an account waiting for it (None: not an account stage)."""

    name: str
    queue: str
    actor: str
    event: type[Event] | None
    waits_at: str | None = None


STAGES: tuple[Stage, ...] = (
    Stage("registration", REGISTRATION_QUEUE, REGISTRATION_ACTOR, None),
    Stage("discovery", OrgRegistered.queue, OrgRegistered.actor, OrgRegistered),
    Stage(
        "validation",
        AccountsDiscovered.queue,
        AccountsDiscovered.actor,
        AccountsDiscovered,
        "discovered",
    ),
    Stage(
        "harvest", AccountsValidated.queue, AccountsValidated.actor, AccountsValidated, "validated"
    ),
    Stage("reconcile", TagsHarvested.queue, TagsHarvested.actor, TagsHarvested, "harvested"),
)
STAGE_BY_NAME = {s.name: s for s in STAGES}
STAGE_BY_QUEUE = {s.queue: s for s in STAGES}
QUEUES: tuple[str, ...] = tuple(s.queue for s in STAGES)
