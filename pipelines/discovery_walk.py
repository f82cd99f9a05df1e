"""Discovery's get: the OU tree walked from every root down, a page of accounts at a time.

`walk` pages through roots, OUs and accounts parent by parent, so memory holds one page and
the stack of OUs still to visit, never the organization; `below` is the same descent from any
parents (the change-event feed re-reads one OU with it). A page is retried with backoff while
AWS throttles or fails transiently; an answer without a field the walk needs raises
MalformedAnswer, or is noted and skipped so the caller marks the walk incomplete.

A walk is one message that lasts minutes, so it does not keep its process from stopping: once
`WALKS.stopping` is set (the worker's SIGTERM, services/processes/grace.py) it raises `Stopping`
at its next page or nap, and the worker hands its message back to RabbitMQ undone; delivered
again, the walk starts over (every stage is idempotent). `WALKS.pages` counts the pages read,
which the worker's health takes for progress (a walk finishes no message for minutes).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, PaginationError

from orgsync.pipelines.aws_errors import Deferred, backoff_seconds, classify

PAGE_SIZE = 20  # the most AWS Organizations returns in one page
# parents listed at once by one walk: the tree's page calls overlap (the organization's rate
# budget still paces them), so a walk of 10,000 accounts takes seconds, not half a minute
WALK_THREADS = 16
PAGE_ATTEMPTS = 6  # per page, each one after botocore's own retries
DEFERRED_NAP_S = 1.0
PAGE_BACKOFF_BASE = 1.0  # seconds; full jitter, doubling per attempt ...
PAGE_BACKOFF_CAP = 20.0  # ... at most 1+2+4+8+16 s of waiting before a page gives up
Sleep = Callable[[float], None]


class Stopping(Exception):
    """The process is stopping: the walk gave up, and its message is to be delivered again."""


@dataclass
class Walks:
    """What a process tells its walks (stop) and learns from them (pages read)."""

    stopping: threading.Event = field(default_factory=threading.Event)
    pages: int = 0

    def next_page(self) -> None:
        if self.stopping.is_set():
            raise Stopping("the worker is stopping: the walk hands its message back")

    def page_read(self) -> None:
        self.pages += 1  # an increment lost to a race only delays a health report

    def nap(self, sleep: Sleep, seconds: float) -> None:
        """`sleep`, cut short when the process stops (time.sleep itself cannot be woken)."""
        if sleep is time.sleep:
            self.stopping.wait(seconds)
        else:
            sleep(seconds)
        self.next_page()


WALKS = Walks()  # one per process


@dataclass(frozen=True)
class Parent:
    parent_id: str
    path: str
    in_scope: bool


@dataclass(frozen=True)
class SeenAccount:
    account_id: str
    name: str
    email: str | None
    aws_state: str
    org_path: str
    parent_id: str
    in_scope: bool


def account_state(raw: dict[str, Any]) -> str:
    """AWS `State`, falling back to `Status`, which AWS retires in September 2026."""
    return str(raw.get("State") or raw.get("Status") or "UNKNOWN").upper()


def aws_pages(
    client: Any, operation: str, key: str, sleep: Sleep = time.sleep, **params: Any
) -> Iterator[list[dict[str, Any]]]:
    """Every page of a list call, token by token; AWS may send an empty page that still carries
    a token. Paging by hand, not with a botocore paginator, so any object with the three list
    methods (a fake in a test or benchmark) can be walked."""
    call = getattr(client, operation)
    token: str | None = None
    while True:
        WALKS.next_page()
        page = retried(call, sleep, **params, MaxResults=PAGE_SIZE, **_next(token))
        WALKS.page_read()
        yield page.get(key, [])
        previous, token = token, page.get("NextToken")
        if not token:
            return
        if token == previous:
            raise PaginationError(message=f"{operation} returned the same NextToken twice")


def _next(token: str | None) -> dict[str, str]:
    return {"NextToken": token} if token else {}


def retried(call: Any, sleep: Sleep, **params: Any) -> dict[str, Any]:
    """One page, retried with backoff while AWS throttles or fails transiently. This comes on
    top of botocore's few quick retries, so that a busy organization does not send a
    100,000-account walk back to the start over one page. A call the rate budget deferred is
    tried again at its slot, without counting: a walk is one message, so it keeps its thread
    (waking at least every `DEFERRED_NAP_S`, one walk per organization and sync). Every nap
    ends at once, raising `Stopping`, when the process stops."""
    attempt = 0
    while True:
        try:
            return dict(call(**params))
        except Deferred as deferred:
            WALKS.nap(sleep, min(deferred.after_s, DEFERRED_NAP_S))
            continue
        except (ClientError, BotoCoreError) as error:
            if attempt + 1 == PAGE_ATTEMPTS or not classify(error).transient:
                raise
            WALKS.nap(sleep, backoff_seconds(attempt, base=PAGE_BACKOFF_BASE, cap=PAGE_BACKOFF_CAP))
            attempt += 1


class MalformedAnswer(ValueError):
    """AWS answered without a field the walk cannot do without."""


def walk(
    client: Any,
    limit_ou_ids: tuple[str, ...],
    sleep: Sleep = time.sleep,
    *,
    malformed: list[str] | None = None,
) -> Iterator[list[SeenAccount]]:
    """Pages of accounts, parent by parent, from every root down (depth first, so the stack
    holds the OUs of one branch and their siblings, never the whole tree's accounts).

    An account or OU that AWS lists without a field the walk needs (an id, a name, a state)
    raises MalformedAnswer; with a `malformed` list it is noted there and skipped instead, so
    the rest of the organization is still walked and the caller marks the walk incomplete."""
    scope = set(limit_ou_ids)
    roots = [root for page in aws_pages(client, "list_roots", "Roots", sleep) for root in page]
    if not roots:
        # a complete walk of nothing would remove every account
        raise MalformedAnswer("ListRoots returned no root")
    stack = []
    for root in roots:
        if _noted(malformed, _missing(root, "ListRoots", "a root", "Id")):
            continue
        stack.append(
            Parent(root["Id"], root.get("Name") or "Root", not scope or root["Id"] in scope)
        )
    return below(client, stack, scope, sleep, malformed=malformed)


def below(
    client: Any,
    stack: list[Parent],
    scope: Collection[str],
    sleep: Sleep = time.sleep,
    *,
    malformed: list[str] | None = None,
    threads: int = WALK_THREADS,
) -> Iterator[list[SeenAccount]]:
    """Pages of the accounts below the parents on `stack` (`walk`'s descent, from any parents:
    the roots, or one OU the change-event feed re-reads).

    Up to `threads` parents are listed at once, each by a thread of the walk's own that pages
    through its accounts and then its child OUs, which it hands to the others: a tree of 600
    page calls takes about as long as its deepest branch, not as the sum of its calls. Pages
    come out in no set order, through a queue of a few pages, so memory holds those pages and
    the OUs not yet listed, never the organization. The first error any thread meets ends the
    walk and is raised here; so is `Stopping`."""
    walk = _Descent(client, scope, sleep, malformed, threads)
    return walk.pages(stack)


@dataclass
class _Descent:
    """One concurrent descent (see `below`)."""

    client: Any
    scope: Collection[str]
    sleep: Sleep
    malformed: list[str] | None
    threads: int

    def __post_init__(self) -> None:
        self.out: queue.Queue[Any] = queue.Queue(maxsize=2 * self.threads)
        self.ended = threading.Event()  # the reader is gone or an error ended the walk
        self.lock = threading.Lock()
        # parents handed to the pool and not yet fully listed, and one for the reader while it
        # hands the first ones: the walk is over when none is left
        self.open = 1
        self.error: BaseException | None = None  # the first error: the one raised

    def pages(self, stack: list[Parent]) -> Iterator[list[SeenAccount]]:
        if not stack:
            return
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="walk")
        self.pool = pool
        try:
            for parent in stack:
                self._hand(parent)
            self._release()
            while (item := self.out.get()) is not _DONE:
                if item is _FAILED:
                    assert self.error is not None
                    raise self.error
                yield item
        finally:
            self.ended.set()
            while True:  # free any thread blocked on a full queue, then let them all end
                try:
                    self.out.get_nowait()
                except queue.Empty:
                    break
            pool.shutdown(wait=True, cancel_futures=True)

    def _hand(self, parent: Parent) -> None:
        with self.lock:
            self.open += 1
        self.pool.submit(self._list, parent)

    def _list(self, parent: Parent) -> None:
        try:
            if not self.ended.is_set():
                self._list_parent(parent)
        except BaseException as error:  # every error ends the walk; the reader raises the first
            with self.lock:
                self.error = self.error or error
            self.ended.set()
            self._put(_FAILED, force=True)
        finally:
            self._release()

    def _release(self) -> None:
        with self.lock:
            self.open -= 1
            last = self.open == 0
        if last:
            self._put(_DONE, force=True)

    def _list_parent(self, parent: Parent) -> None:
        for page in aws_pages(
            self.client,
            "list_accounts_for_parent",
            "Accounts",
            self.sleep,
            ParentId=parent.parent_id,
        ):
            batch = [
                seen(raw, parent)
                for raw in page
                if not _noted(self.malformed, _missing_account_fields(raw, parent))
            ]
            if batch:
                self._put(batch)
        for page in aws_pages(
            self.client,
            "list_organizational_units_for_parent",
            "OrganizationalUnits",
            self.sleep,
            ParentId=parent.parent_id,
        ):
            for ou in page:
                if _noted(self.malformed, _missing(ou, _ou_call(parent), "an OU", "Id", "Name")):
                    continue
                in_scope = parent.in_scope or ou["Id"] in self.scope
                self._hand(Parent(ou["Id"], f"{parent.path}/{ou['Name']}", in_scope))

    def _put(self, item: Any, force: bool = False) -> None:
        """Hand `item` to the reader, waiting while the queue is full, until the walk ends
        (`force`: the walk's end and its error always get through)."""
        while True:
            if self.ended.is_set() and not force:
                raise Stopping("the walk has ended")
            try:
                self.out.put(item, timeout=0.1)
                return
            except queue.Full:
                if force and self.ended.is_set():
                    return  # the reader is gone: nobody waits for it


_DONE = object()  # every parent is listed
_FAILED = object()  # a thread met an error: `_Descent.error`


def _missing(raw: dict[str, Any], call: str, what: str, *names: str) -> str | None:
    missing = [name for name in names if not isinstance(raw.get(name), str) or not raw[name]]
    if not missing:
        return None
    ident = raw.get("Id") if isinstance(raw.get("Id"), str) else None
    named = f" {ident[:40]}" if ident else ""
    return f"{call} returned {what}{named} without {', '.join(missing)}"


def _ou_call(parent: Parent) -> str:
    return f"ListOrganizationalUnitsForParent({parent.parent_id})"


def _missing_account_fields(raw: dict[str, Any], parent: Parent) -> str | None:
    call = f"ListAccountsForParent({parent.parent_id})"
    problem = _missing(raw, call, "an account", "Id", "Name")
    if problem is None and not (raw.get("State") or raw.get("Status")):
        problem = f"{call} returned an account {str(raw['Id'])[:40]} without State or Status"
    return problem


def _noted(malformed: list[str] | None, problem: str | None) -> bool:
    """True when `problem` is to be skipped (noted in `malformed`); raises without a list."""
    if problem is None:
        return False
    if malformed is None:
        raise MalformedAnswer(problem)
    malformed.append(problem)
    return True


def malformed_error(malformed: list[str]) -> str:
    """The sync's error for a walk that skipped malformed entries: the first few, and a count."""
    shown = "; ".join(malformed[:3])
    more = f" (and {len(malformed) - 3} more)" if len(malformed) > 3 else ""
    return f"MalformedAnswer: {len(malformed)} skipped: {shown}{more}"


def seen(raw: dict[str, Any], parent: Parent) -> SeenAccount:
    return SeenAccount(
        account_id=str(raw["Id"]),
        name=str(raw.get("Name") or ""),
        email=raw.get("Email"),
        aws_state=account_state(raw),
        org_path=parent.path,
        parent_id=parent.parent_id,
        in_scope=parent.in_scope,
    )
