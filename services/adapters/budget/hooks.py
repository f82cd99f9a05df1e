"""The budget in a boto3 client, through botocore's events, so that no stage knows about it.

- `before-call`: wait for a token (the ticket is kept in the request's context);
- `needs-retry`, first of its handlers: a throttled answer lowers the rate and is retried after
  a budget wait, for up to `PATIENCE_S`; botocore's own retry handler (AWS_RETRY_MODE,
  AWS_MAX_ATTEMPTS) then only sees what is not throttling (5xx, network errors), and a
  throttled call that outlasts the patience.

No thread waits long for a token: when the next slot is further away than its lane may wait
(`WAIT_S`: a second for bulk re-sync work, two for live work), the token goes back and the call
raises `Deferred` unsent; the stage sends its accounts round again at that slot. Bulk work thus
books at most a second of an organization's rate ahead, and live work (`lane`), which may book
further, always finds a slot within that second: its reserved share, without idling the rate
when nothing live is waiting.

PostgreSQL out of reach is no error of the call: it goes ahead unpaced (store.Budget says why).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import psycopg

from orgsync.pipelines.aws_errors import Deferred, is_throttling
from orgsync.pipelines.events import BULK, LIVE
from orgsync.services.logs import get_logger

if TYPE_CHECKING:
    from orgsync.services.adapters.budget.store import Budget

log = get_logger("orgsync.budget")

PATIENCE_S = 300.0  # one call's throttled retries, waits included, before its error shows
_TICKET = "orgsync_budget_ticket"
_STARTED = "orgsync_budget_started"
WAIT_S = {BULK: 1.0, LIVE: 2.0}  # the longest a call of each lane waits for its token
# The lane of the work this thread does: calls outside a stage page (registration checks, the
# feed's re-reads, `orgsync check`) are someone's request, hence live.
_lane: ContextVar[str] = ContextVar("orgsync_budget_lane", default=LIVE)


@contextmanager
def lane(name: str) -> Iterator[None]:
    """Calls made in this block, and in threads started with a copy of its context, are `name`'s."""
    token = _lane.set(name)
    try:
        yield
    finally:
        _lane.reset(token)


def current_lane() -> str:
    return _lane.get()


def patience() -> float:
    return WAIT_S.get(_lane.get(), WAIT_S[BULK])


def attach(budget: Budget, client: Any, scope: str) -> Any:
    """`client` with every call paced by `budget` of (`scope`, its API); returns it."""
    service = client.meta.service_model.service_id.hyphenize()
    events = client.meta.events
    events.register(f"before-call.{service}", before_call(budget, scope))
    events.register_first(f"needs-retry.{service}", needs_retry(budget, scope))
    return client


def before_call(budget: Budget, scope: str) -> Callable[..., None]:
    def handler(model: Any, context: dict[str, Any], **_: Any) -> None:
        context[_STARTED] = time.monotonic()
        try:
            ticket, wait = budget.acquire(scope, model.name)
        except psycopg.Error as error:
            log.warning("aws_budget_unavailable", scope=scope, error=str(error)[:300])
            return
        if wait > patience():
            budget.give_back(scope, model.name, ticket, wait)
            raise Deferred(model.name, wait)
        context[_TICKET] = ticket
        if wait > 0:
            budget.sleep(wait)

    return handler


def needs_retry(budget: Budget, scope: str) -> Callable[..., float | None]:
    def handler(
        response: Any, operation: Any, request_dict: dict[str, Any], **_: Any
    ) -> float | None:
        if response is None:
            return None  # a network error: botocore's own retries decide
        status = getattr(response[0], "status_code", None)
        code = str((response[1] or {}).get("Error", {}).get("Code", ""))
        if not is_throttling(code, status):
            return None
        context = request_dict.setdefault("context", {})
        if time.monotonic() - context.get(_STARTED, time.monotonic()) > PATIENCE_S:
            return None
        try:
            budget.throttled(scope, operation.name, int(context.get(_TICKET, 0)))
            ticket, wait = budget.acquire(scope, operation.name)
        except psycopg.Error as error:
            log.warning("aws_budget_unavailable", scope=scope, error=str(error)[:300])
            return None  # botocore's own retries decide
        if wait > patience():
            budget.give_back(scope, operation.name, ticket, wait)
            raise Deferred(operation.name, wait)
        context[_TICKET] = ticket
        return wait

    return handler
