"""The events that flow between the stages, one queue each, named after the event it carries.

Messages carry ids only, never credentials or whole objects. Each event knows its queue, the
actor that consumes it and a deterministic message id, so a stage that runs twice emits the
same message twice and the consumer recognises it.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, ClassVar

REGISTRATION_QUEUE = "org-registration"
REGISTRATION_ACTOR = "register_organization"


class MalformedEvent(ValueError):
    """A message body that is not the event its queue carries."""


@dataclass(frozen=True, kw_only=True)
class Event:
    queue: ClassVar[str]
    actor: ClassVar[str]

    org_id: str
    sync_id: str

    @property
    def message_id(self) -> str:
        raise NotImplementedError

    def payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: object) -> Event:
        """The event in `payload`, or MalformedEvent naming every problem."""
        if not isinstance(payload, dict):
            raise MalformedEvent(f"expected a JSON object, got {type(payload).__name__}")
        expected = {f.name: f.type for f in fields(cls)}
        problems = [f"unknown field {k!r}" for k in payload if k not in expected]
        problems += [
            f"missing field {f.name!r}"
            for f in fields(cls)
            if f.name not in payload and f.default is MISSING
        ]
        for name, kind in expected.items():
            value = payload.get(name)
            if name in payload and not _is(value, str(kind)):
                problems.append(f"{name} must be {kind}, got {type(value).__name__}")
        if problems:
            raise MalformedEvent("; ".join(problems))
        return cls(**payload)


def _is(value: object, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    return isinstance(value, str) and 0 < len(value) <= 256


@dataclass(frozen=True, kw_only=True)
class OrgRegistered(Event):
    """A sync of an organization starts: emitted on registration, update, schedule and demand."""

    queue: ClassVar[str] = "org-registered"
    actor: ClassVar[str] = "discover_accounts"

    @property
    def message_id(self) -> str:
        return f"org-registered:{self.sync_id}"


@dataclass(frozen=True, kw_only=True)
class AccountDiscovered(Event):
    """Discovery imported an in-scope, active account; it waits for validation."""

    queue: ClassVar[str] = "account-discovered"
    actor: ClassVar[str] = "validate_account"

    account_id: str
    attempt: str = "0"

    @property
    def message_id(self) -> str:
        return f"account-discovered:{self.sync_id}:{self.account_id}:{self.attempt}"


@dataclass(frozen=True, kw_only=True)
class AccountValidated(Event):
    """The member role was tried (or skipped for a suspended account); tags come next."""

    queue: ClassVar[str] = "account-validated"
    actor: ClassVar[str] = "harvest_tags"

    account_id: str
    status: str

    @property
    def message_id(self) -> str:
        return f"account-validated:{self.sync_id}:{self.account_id}:{self.status}"


@dataclass(frozen=True, kw_only=True)
class TagsHarvested(Event):
    """The account's ResourceTags are stored; `changed` says whether they differed."""

    queue: ClassVar[str] = "tags-harvested"
    actor: ClassVar[str] = "reconcile_badges"

    account_id: str
    changed: bool

    @property
    def message_id(self) -> str:
        return f"tags-harvested:{self.sync_id}:{self.account_id}"


STAGE_EVENTS: tuple[type[Event], ...] = (
    OrgRegistered,
    AccountDiscovered,
    AccountValidated,
    TagsHarvested,
)
QUEUES: tuple[str, ...] = (REGISTRATION_QUEUE, *(e.queue for e in STAGE_EVENTS))
