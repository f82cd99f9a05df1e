"""The budget's botocore handlers, on a budget that is not PostgreSQL: what each answer does."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from orgsync.pipelines.aws_errors import Deferred, classify
from orgsync.pipelines.events import BULK, LIVE
from orgsync.services.adapters.budget import hooks


class FakeBudget:
    """Tickets 1, 2, ... each to wait `wait` seconds; records what the handlers asked."""

    def __init__(self, wait: float = 0.0, broken: bool = False) -> None:
        self.wait, self.broken = wait, broken
        self.tickets = 0
        self.slept: list[float] = []
        self.throttled_tickets: list[int] = []
        self.given_back: list[tuple[int, float]] = []

    def acquire(self, scope: str, api: str) -> tuple[int, float]:
        if self.broken:
            raise psycopg.OperationalError("connection refused")
        self.tickets += 1
        return self.tickets, self.wait

    def throttled(self, scope: str, api: str, ticket: int) -> None:
        self.throttled_tickets.append(ticket)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def give_back(self, scope: str, api: str, ticket: int, wait: float) -> None:
        self.given_back.append((ticket, wait))


def answer(code: str, status: int) -> tuple[Any, dict[str, Any]]:
    return SimpleNamespace(status_code=status), {"Error": {"Code": code}}


OPERATION = SimpleNamespace(name="ListParents")


def test_a_call_waits_for_its_token_and_keeps_its_ticket_in_the_context() -> None:
    budget = FakeBudget(wait=0.25)
    context: dict[str, Any] = {}
    hooks.before_call(budget, "o-x")(model=OPERATION, context=context)  # type: ignore[arg-type]
    assert budget.slept == [0.25]
    assert context[hooks._TICKET] == 1


def test_a_throttled_answer_lowers_the_rate_and_is_retried_after_a_budget_wait() -> None:
    budget = FakeBudget(wait=0.5)
    request = {"context": {hooks._TICKET: 7}}
    retry = hooks.needs_retry(budget, "o-x")  # type: ignore[arg-type]
    wait = retry(response=answer("TooManyRequestsException", 400), operation=OPERATION,
                 request_dict=request)  # fmt: skip
    assert (wait, budget.throttled_tickets, request["context"][hooks._TICKET]) == (0.5, [7], 1)


def test_an_answer_that_is_not_throttling_is_left_to_botocore() -> None:
    budget = FakeBudget()
    retry = hooks.needs_retry(budget, "o-x")  # type: ignore[arg-type]
    assert retry(response=answer("AccessDenied", 403), operation=OPERATION, request_dict={}) is None
    assert retry(response=None, operation=OPERATION, request_dict={}) is None
    assert budget.throttled_tickets == []


def test_without_postgresql_a_call_goes_ahead_unpaced() -> None:
    budget = FakeBudget(broken=True)
    context: dict[str, Any] = {}
    hooks.before_call(budget, "o-x")(model=OPERATION, context=context)  # type: ignore[arg-type]
    assert budget.slept == [] and hooks._TICKET not in context
    retry = hooks.needs_retry(budget, "o-x")  # type: ignore[arg-type]
    throttled = answer("Throttling", 400)
    assert retry(response=throttled, operation=OPERATION, request_dict={"context": {}}) is None


def test_a_bulk_call_whose_slot_is_over_a_second_away_is_deferred_unsent_and_its_token_kept() -> (
    None
):
    budget = FakeBudget(wait=1.5)
    context: dict[str, Any] = {}
    with hooks.lane(BULK), pytest.raises(Deferred) as deferred:
        hooks.before_call(budget, "o-x")(model=OPERATION, context=context)  # type: ignore[arg-type]
    assert budget.slept == [] and budget.given_back == [(1, 1.5)]
    assert hooks._TICKET not in context
    verdict = classify(deferred.value)
    assert (verdict.transient, verdict.throttling, verdict.retry_after) == (True, True, 1.5)


def test_a_live_call_may_wait_longer_than_a_bulk_one_its_reserved_share() -> None:
    budget = FakeBudget(wait=1.5)
    with hooks.lane(LIVE):
        hooks.before_call(budget, "o-x")(model=OPERATION, context={})  # type: ignore[arg-type]
    assert budget.slept == [1.5] and budget.given_back == []
    budget.wait = 2.5
    with hooks.lane(LIVE), pytest.raises(Deferred):
        hooks.before_call(budget, "o-x")(model=OPERATION, context={})  # type: ignore[arg-type]


def test_a_throttled_call_whose_next_slot_is_far_is_deferred_not_retried_in_the_thread() -> None:
    budget = FakeBudget(wait=5.0)
    retry = hooks.needs_retry(budget, "o-x")  # type: ignore[arg-type]
    with hooks.lane(BULK), pytest.raises(Deferred):
        retry(response=answer("Throttling", 400), operation=OPERATION,
              request_dict={"context": {hooks._TICKET: 3}})  # fmt: skip
    assert budget.throttled_tickets == [3] and budget.given_back == [(1, 5.0)]
