"""Roles, grants and actors (pipelines/access.py): what a grant on one organization or on all
lets an actor do, and how actors are named in the audit trail."""

from __future__ import annotations

import pytest

from orgsync.pipelines.access import (
    Actor,
    Grant,
    Need,
    Reach,
    Role,
    administrator,
    lifetime,
    scope_of,
    strongest,
    token_name_problem,
)

A, B = "o-aaaaaaaaaa", "o-bbbbbbbbbb"


def test_a_role_includes_the_roles_below_it() -> None:
    actor = Actor("user", "ann", (Grant(Role.OPERATOR, A),))
    assert actor.may(Role.VIEWER, A) and actor.may(Role.OPERATOR, A)
    assert not actor.may(Role.ADMIN, A)


def test_a_grant_on_one_organization_says_nothing_of_another_or_of_all() -> None:
    actor = Actor("token", "dash", (Grant(Role.ADMIN, A),))
    assert not actor.may(Role.VIEWER, B)
    assert not actor.may(Role.VIEWER)
    assert actor.org_ids() == frozenset({A})


def test_a_grant_on_every_organization_covers_each_and_lists_none() -> None:
    actor = Actor("user", "bob", (Grant(Role.VIEWER), Grant(Role.ADMIN, B)))
    assert actor.may(Role.VIEWER, A) and actor.may(Role.ADMIN, B)
    assert actor.org_ids(Role.VIEWER) is None
    assert actor.org_ids(Role.ADMIN) == frozenset({B})


def test_an_actor_without_grants_may_do_nothing() -> None:
    actor = Actor("user", "eve")
    assert not actor.may(Role.VIEWER, A)
    assert actor.org_ids() == frozenset()


def test_actors_are_named_as_the_audit_trail_names_them() -> None:
    assert str(administrator("cli", "root")) == "cli:root"
    assert str(Actor("amqp", "guest")) == "amqp:guest"
    with pytest.raises(ValueError):
        Actor("robot", "x")


def test_roles_are_read_from_their_names_and_nothing_else() -> None:
    assert Role.parse(" Operator ") is Role.OPERATOR
    assert str(Role.ADMIN) == "admin"
    with pytest.raises(ValueError, match="viewer, operator or admin"):
        Role.parse("root")


def test_strongest_drops_the_grants_another_covers() -> None:
    grants = [Grant(Role.VIEWER, A), Grant(Role.OPERATOR), Grant(Role.ADMIN, B)]
    assert strongest(grants) == (Grant(Role.ADMIN, B), Grant(Role.OPERATOR))


def test_a_route_reached_on_all_needs_the_role_on_every_organization() -> None:
    scoped = Actor("user", "ann", (Grant(Role.ADMIN, A),))
    assert Need(Role.ADMIN, Reach.ANY).met_by(scoped)
    assert Need(Role.ADMIN, Reach.ORG).met_by(scoped)
    assert not Need(Role.ADMIN, Reach.ALL).met_by(scoped)
    assert not Need(Role.OPERATOR).met_by(Actor("user", "vic", (Grant(Role.VIEWER),)))
    assert Need(Role.VIEWER, Reach.SIGNED_IN).met_by(Actor("user", "nobody"))


def test_the_scope_of_an_actor_is_a_sorted_list_or_none_for_all() -> None:
    assert scope_of(Actor("token", "t", (Grant(Role.VIEWER, B), Grant(Role.VIEWER, A)))) == [A, B]
    assert scope_of(administrator("cli", "root")) is None
    assert scope_of(Actor("user", "nobody")) == []


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800.0), ("12h", 43200.0), ("90d", 7776000.0), ("never", None)]
)
def test_a_token_lifetime_is_read_in_minutes_hours_days_or_weeks(
    text: str, seconds: float | None
) -> None:
    assert lifetime(text) == seconds


@pytest.mark.parametrize("text", ["0d", "1", "3y", "999999w", "1.5h", "-1d", "²d", ""])
def test_a_token_lifetime_that_is_none_of_those_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        lifetime(text)


def test_a_token_name_is_short_plain_and_never_the_break_glass_one() -> None:
    assert token_name_problem("grafana.prod-1") is None
    for name in ["", "-x", "a b", "x" * 65, "ü", "break-glass"]:
        assert token_name_problem(name), name
