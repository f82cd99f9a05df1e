"""`orgsync retry-failed`: the one path that validates failed accounts again (also the demo's and
the console's)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from typing import Any

from orgsync.pipelines import validation
from orgsync.pipelines.audit import By
from orgsync.pipelines.events import AccountsDiscovered, MalformedEvent
from orgsync.pipelines.outbox import emit
from orgsync.services.adapters.dead_letters import DEAD_LETTERS, DeadLetters
from orgsync.services.bootstrap import House


@dataclass(frozen=True)
class Redriven:
    failed: int  # accounts from the failures table
    dead_lettered: int  # accounts taken back from validations in the dead-letter queue
    stale: int  # dead letters whose account has moved on: acked, since nothing waits for them
    left: int  # dead letters left in the queue: unreadable, or outside the filters
    dry_run: bool

    @property
    def queued(self) -> int:
        return self.failed + self.dead_lettered

    def describe(self) -> str:
        text = f"{'would queue' if self.dry_run else 'queued'} {self.queued} account(s)"
        text += " for validation"
        if self.dead_lettered or self.stale or self.left:
            text += (
                f" ({self.dead_lettered} from {DEAD_LETTERS}); {DEAD_LETTERS}: "
                f"{self.stale} stale dead letter(s) {'to drop' if self.dry_run else 'dropped'}"
                f" (their account has moved on), {self.left} left in place"
                " (unreadable, or outside --org/--account/--code)"
            )
        return text


def retry_failed(
    house: House,
    org_id: str | None,
    account_id: str | None = None,
    code: str | None = None,
    dry_run: bool = False,
    by: By | None = None,
) -> Redriven:
    """Validate failed accounts again, each in a new message with a fresh retry budget.

    Two sources: the failures table, and validation messages dead-lettered without an
    outcome (a worker error that outlasted the retries). A dry run does the same work in a
    transaction it rolls back, and leaves every dead letter where it was. `by`: who asked,
    for the audit trail (a dry run changes nothing and records nothing).
    """
    token = f"retry-{uuid.uuid4().hex[:12]}"
    with house.connect() as conn, DeadLetters(house.settings.broker_url) as letters:
        with conn.transaction(force_rollback=dry_run):
            # dead letters first: the failed accounts' stage resets would make them look due
            events, settle, stale, left = _redrive_dead_letters(
                conn, letters, token, org_id, account_id, code
            )
            failed = validation.redrive(conn, token, org_id, account_id, code)
            ids = emit(conn, [*events, *failed])
            result = Redriven(_accounts(failed), _accounts(events), stale, left, dry_run)
            if by is not None and not dry_run:
                asked = {"account": account_id, "code": code, "queued": result.queued}
                by.record(conn, "failed.retry", org_id, asked)
        if dry_run:
            return result
        letters.ack(settle)  # only once the re-driven events are committed
        house.publish(ids)
    return result


def _accounts(events: list[AccountsDiscovered]) -> int:
    return sum(len(e.account_ids) for e in events)


def _redrive_dead_letters(
    conn: Any,
    letters: DeadLetters,
    token: str,
    org_id: str | None,
    account_id: str | None,
    code: str | None,
) -> tuple[list[AccountsDiscovered], list[int], int, int]:
    events: dict[str, AccountsDiscovered] = {}
    settle: list[int] = []
    stale = left = 0
    for tag, body in letters.take():
        dead = _dead_event(body)
        # a dead letter carries no AWS error code, so --code never selects one
        if dead is None or code or org_id not in (None, dead.org_id):
            left += 1
            continue
        if account_id is not None:
            if account_id not in dead.account_ids:
                left += 1
                continue
            # that account alone goes; the letter stays for the rest of its page
            dead = dataclasses.replace(dead, account_ids=(account_id,))
            left += 1
        else:
            settle.append(tag)
        fresh = validation.redrive_dead_letter(conn, dead, token)
        if fresh is None:
            stale += 1
        else:
            events[fresh.message_id] = fresh
    return list(events.values()), settle, stale, left


def _dead_event(body: bytes) -> AccountsDiscovered | None:
    """The validation a dead letter carries; None for one that cannot be read, nested too
    deeply for the parser included (RecursionError): it is left in place and counted."""
    try:
        args = json.loads(body)["args"]
        event = AccountsDiscovered.from_payload(args[0] if len(args) == 1 else None)
    except (ValueError, KeyError, TypeError, IndexError, RecursionError, MalformedEvent):
        return None
    return event if isinstance(event, AccountsDiscovered) else None
