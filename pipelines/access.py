"""Who acts, and what their grants let them do: the roles of the console, the API and the CLI.

A grant is a role on one organization or on all of them. Roles are ordered: an `operator` may
do what a `viewer` may, an `admin` what an `operator` may. An actor is named the way the audit
trail names it: `user:<subject>`, `token:<name>`, `cli:<os user>`, `amqp:<broker user>`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass


class Role(enum.IntEnum):
    VIEWER = 1  # reads everything in scope, never a secret
    OPERATOR = 2  # + sync, retry failed validations, edit badges
    ADMIN = 3  # + register, update and remove organizations, webhooks, tokens, grants

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"no role {text!r}: viewer, operator or admin") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Grant:
    role: Role
    org_id: str | None = None  # None: every organization

    def __str__(self) -> str:
        return f"{self.role} on {self.org_id or 'every organization'}"


KINDS = ("user", "token", "cli", "amqp")


@dataclass(frozen=True)
class Actor:
    kind: str  # one of KINDS
    name: str
    grants: tuple[Grant, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"no actor kind {self.kind!r}")

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    def may(self, role: Role, org_id: str | None = None) -> bool:
        """Whether `role` is granted on `org_id`; with None, on every organization."""
        return any(g.role >= role and (g.org_id is None or g.org_id == org_id) for g in self.grants)

    def org_ids(self, role: Role = Role.VIEWER) -> frozenset[str] | None:
        """The organizations this actor holds `role` on; None when it holds it on all."""
        if self.may(role):
            return None
        return frozenset(g.org_id for g in self.grants if g.role >= role and g.org_id)


def administrator(kind: str, name: str) -> Actor:
    """A break-glass identity (the local password, ORGSYNC_API_TOKEN, the CLI): admin on all."""
    return Actor(kind, name, (Grant(Role.ADMIN),))


def strongest(grants: Iterable[Grant]) -> tuple[Grant, ...]:
    """`grants` without those another one already covers, in a stable order."""
    kept = set(grants)
    covered = {
        g
        for g in kept
        for h in kept
        if h != g and h.role >= g.role and (h.org_id is None or h.org_id == g.org_id)
    }
    return tuple(sorted(kept - covered, key=lambda g: (-g.role, g.org_id or "")))


def scope_of(actor: Actor, role: Role = Role.VIEWER) -> list[str] | None:
    """The organizations `actor` holds `role` on as a SQL parameter (`= ANY(%(scope)s)`): None
    when it holds it on all of them."""
    ids = actor.org_ids(role)
    return None if ids is None else sorted(ids)


class Reach(enum.Enum):
    """Where a route's role must be held."""

    SIGNED_IN = "signed in"  # any session, even one with no grant (signing out)
    ANY = "any"  # on some organization; what it shows is narrowed to the actor's scope
    ORG = "org"  # on the organization the request names (the handler checks which)
    ALL = "all"  # on every organization (webhooks, queue depths, registering a new one)


@dataclass(frozen=True)
class Need:
    role: Role
    reach: Reach = Reach.ANY

    def met_by(self, actor: Actor) -> bool:
        """Whether `actor` may call the route at all; for Reach.ORG the organization named is
        checked again by the handler."""
        if self.reach is Reach.SIGNED_IN:
            return True
        if self.reach is Reach.ALL:
            return actor.may(self.role)
        return any(g.role >= self.role for g in actor.grants)


TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
BREAK_GLASS = "break-glass"  # the actor name of ORGSYNC_API_TOKEN and the local password
_LIFETIME = re.compile(r"([0-9]{1,6})([mhdw])")
_LIFETIME_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_LIFETIME_S = 2 * 366 * 86400


def token_name_problem(name: str) -> str | None:
    if name == BREAK_GLASS:
        return f"{BREAK_GLASS!r} names ORGSYNC_API_TOKEN in the audit trail; choose another name"
    if not TOKEN_NAME.fullmatch(name):
        return "a token name is 1-64 letters, digits, '.', '_' or '-', the first a letter or digit"
    return None


def lifetime(text: str) -> float | None:
    """Seconds from `30m`, `12h`, `90d`, `8w` (at most two years); None for `never`."""
    text = text.strip().lower()
    if text == "never":
        return None
    match = _LIFETIME.fullmatch(text)
    seconds = int(match[1]) * _LIFETIME_SECONDS[match[2]] if match else 0
    if not 0 < seconds <= MAX_LIFETIME_S:
        shown = text if len(text) <= 40 else f"{text[:40]}..."
        raise ValueError(
            f"{shown!r}: expected a lifetime such as 30m, 12h, 90d or 8w (at most two years),"
            " or never"
        )
    return float(seconds)
