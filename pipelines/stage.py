"""What every stage function takes and returns.

A stage is one function `stage(deps, event) -> StageResult` that commits its state and the
events it emits together (through the outbox) and hands their ids to `deps.relay`. `Deps` is
everything it needs from the outside world, built once per process by the composition root
(services/bootstrap.py) and by the tests with their own database and simulated AWS. A stage
holds a database connection only to read or to write, never across AWS calls, and its AWS calls
for a page run through `deps.concurrently`, which the worker bounds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import psycopg

from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.orgs import Organization
from orgsync.pipelines.request_rules import Credentials
from orgsync.pipelines.resync import DEFAULT_REHARVEST_AFTER, DEFAULT_REVALIDATE_AFTER

Conn = psycopg.Connection[dict[str, Any]]
T = TypeVar("T")
R = TypeVar("R")


def one_by_one(call: Callable[[T], R], items: Iterable[T]) -> list[R]:
    return [call(item) for item in items]


def as_is(pages: Iterator[T]) -> Iterator[T]:
    return pages


def keep(message_ids: list[str]) -> None:
    """No relay: the events stay in the outbox (a test reads them there)."""


@dataclass(frozen=True)
class Deps:
    """`connect()` opens a connection whose block commits on success (a pool's `connection`);
    `organizations(org)` is the organization role's Organizations client; `sts` the service's
    own STS client; `concurrently(call, items)` calls `call` on every item, bounded, in order;
    `read_ahead(pages)` may fetch a walk's next pages while the current one is stored;
    `relay(message_ids)` publishes outbox rows just committed (and never raises: what it
    cannot publish, the outbox sweeper publishes later); `sleep` waits between a walk's page
    retries; `assume_org_role(credentials, use_external_id)` assumes a registration's
    organization role with the service's own credentials; `sqs_endpoint` is where a simulated
    AWS's queue URLs live (AWS_ENDPOINT_URL)."""

    connect: Callable[[], AbstractContextManager[Conn]]
    keyring: Keyring
    organizations: Callable[[Organization], Any]
    sts: Any
    concurrently: Callable[[Callable[[Any], Any], Iterable[Any]], list[Any]] = one_by_one
    read_ahead: Callable[[Iterator[Any]], Iterator[Any]] = as_is
    relay: Callable[[list[str]], None] = keep
    sleep: Callable[[float], None] = time.sleep
    removal_limit: float = 0.20  # pipelines/removal_guard.py
    removal_min: int = 10
    revalidate_after: float = DEFAULT_REVALIDATE_AFTER  # pipelines/resync.py
    reharvest_after: float = DEFAULT_REHARVEST_AFTER
    assume_org_role: Callable[[Credentials, bool], Any] | None = None
    sqs_endpoint: str | None = None


class Outcome(StrEnum):
    DONE = "done"  # the stage did its work (some accounts may go round again later)
    SKIPPED = "skipped"  # nothing was due: a duplicate, or a newer sync took over
    REJECTED = "rejected"  # the event names what does not exist; recorded, nothing changed
    RETRY = "retry"  # a transient failure of the whole event: the actor retries it


@dataclass
class StageResult:
    """What a stage did: the outcome, counts for its log line, the message ids it committed to
    the outbox (for the relay), the AWS error code and message when there was one, and what is
    to be recorded in `rejected_messages` against the message (why it was rejected, or an AWS
    answer that could not be read)."""

    outcome: Outcome
    counts: dict[str, Any] = field(default_factory=dict)
    message_ids: list[str] = field(default_factory=list)
    error_code: str | None = None
    reason: str | None = None
    rejections: list[str] = field(default_factory=list)

    def log_fields(self) -> dict[str, Any]:
        extra = {"error_code": self.error_code, "reason": self.reason}
        return {
            "outcome": self.outcome.value,
            **self.counts,
            **{k: v for k, v in extra.items() if v is not None},
        }


def rejected(reason: str) -> StageResult:
    return StageResult(Outcome.REJECTED, reason=reason, rejections=[reason])
