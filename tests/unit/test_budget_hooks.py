"""The budget's botocore handlers, on a budget that is not PostgreSQL: what each answer does."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import psycopg

from orgsync.services.adapters.budget import hooks


class FakeBudget:
    """Tickets 1, 2, ... each to wait `wait` seconds; records what the handlers asked."""

    def __init__(self, wait: float = 0.0, broken: bool = False) -> None:
        self.wait, self.broken = wait, broken
        self.tickets = 0
        self.slept: list[float] = []
        self.throttled_tickets: list[int] = []

    def acquire(self, scope: str, api: str) -> tuple[int, float]:
        if self.broken:
            raise psycopg.OperationalError("connection refused")
        self.tickets += 1
        return self.tickets, self.wait

    def throttled(self, scope: str, api: str, ticket: int) -> None:
        self.throttled_tickets.append(ticket)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


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
