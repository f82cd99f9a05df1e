"""Running the pipeline day to day: failed validations, re-driving them, queue depth."""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

from orgsync.pipelines.credentials import CredentialError
from orgsync.pipelines.orgs import load_organization
from orgsync.services.adapters import dead_letters, keys, queues
from orgsync.services.commands.context import Command, Context, duration
from orgsync.services.commands.output import print_json, table
from orgsync.services.errors import ServiceUnavailable, UserError
from orgsync.services.read_models import dispatch, inventory
from orgsync.services.use_cases import redrive


def cmd_failed(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        org_id = ctx.org_id(conn, args.org) if args.org else None
        rows = inventory.failures(conn, org_id)
    if args.json:
        print_json(rows)
        return 0
    columns = ["account_id", "name", "org_id", "code", "message", "attempts"]
    print(table(rows, [*columns, "first_failed_at", "last_failed_at"]))
    print(f"{len(rows)} failed account(s)")
    with ctx.connect() as conn:
        print("\n".join(why_they_fail(ctx, conn, rows)))
    try:
        dead = dead_letters.dead_letter_count(ctx.settings.broker_url)
    except ServiceUnavailable as error:
        print(f"dead-lettered validations not counted: {error}")
        return 0
    if dead:
        print(
            f"{dead} validation message(s) dead-lettered in {dead_letters.DEAD_LETTERS} without an"
            " outcome: `orgsync retry-failed` re-drives them"
        )
    return 0


def why_they_fail(ctx: Context, conn: Any, rows: list[dict[str, Any]]) -> Iterator[str]:
    """Per organization and error code: the member role orgsync tried (read from the sealed
    credentials, which this command can open: its user holds the key) and what to check."""
    groups: dict[tuple[str, str, tuple[str, ...]], int] = {}
    for row in rows:
        key = (row["org_id"] or "", row["code"], tuple(row["likely_causes"]))
        groups[key] = groups.get(key, 0) + 1
    for (org_id, code, causes), count in groups.items():
        role = member_role(ctx, conn, org_id)
        assuming = f", assuming role {role}" if role else ""
        yield f"{count} account(s) of {org_id or '-'} failed with {code}{assuming}" + (
            ", likely because:" if causes else ""
        )
        yield from (f"  - {cause}" for cause in causes)


def member_role(ctx: Context, conn: Any, org_id: str) -> str | None:
    """The member role name an organization is configured with, or None when its credentials
    cannot be opened here (no key file)."""
    if not org_id:
        return None
    try:
        org = load_organization(conn, keys.load_keyring(ctx.settings), org_id)
    except (CredentialError, UserError, OSError):
        return None
    return org.credentials.member_role_name if org else None


def cmd_retry_failed(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        org_id = ctx.org_id(conn, args.org) if args.org else None
    result = redrive.retry_failed(ctx.house, org_id, args.account, args.code, args.dry_run)
    if args.json:
        print_json({"queued": result.queued, **dataclasses.asdict(result)})
    else:
        print(result.describe())
    return 0


QUEUE_COLUMNS = ["queue", "ready", "in_flight", "delayed", "dead_lettered", "consumers"]
OUTBOX_COLUMNS = ["held", "outbox_in_flight"]
WAITING_COLUMNS = ["org_id", "org", "queue", "lane", "held", "in_flight"]


def cmd_queues(ctx: Context, args: argparse.Namespace) -> int:
    while True:
        rows, problem = dispatch.queue_depths(ctx.house)
        if args.json:
            print_json(rows)
        else:
            print(table(rows, QUEUE_COLUMNS + OUTBOX_COLUMNS))
            if problem:
                print(problem)
            elif waiting := queues.by_organization(rows):
                print("\nwaiting for their turn (pages in PostgreSQL, per organization):")
                print(table(waiting, WAITING_COLUMNS))
        if not args.watch:
            return 0
        time.sleep(args.interval)
        print()


def add(command: Command) -> None:
    p = command("failed", cmd_failed, "accounts whose validation failed, and why", json=True)
    p.add_argument("--org", help="organization id or nickname")
    p = command(
        "retry-failed",
        cmd_retry_failed,
        "validate failed accounts (and dead-lettered validations) again, with a fresh retry"
        " budget; prints how many it queued",
        json=True,
    )
    p.add_argument("--org", help="organization id or nickname")
    p.add_argument("--account", help="only this account id")
    p.add_argument("--code", help="only failures with this AWS error code")
    p.add_argument("--dry-run", action="store_true", help="only say how many would be queued")
    p = command(
        "queues",
        cmd_queues,
        "each queue's depth and consumers, and the pages each organization has waiting for its"
        " turn in PostgreSQL",
        json=True,
    )
    p.add_argument("--watch", action="store_true", help="print again every --interval seconds")
    p.add_argument(
        "--interval",
        type=duration("--interval", whole=False),
        default=2.0,
        metavar="DURATION",
        help="how often --watch prints (2, 0.5s, 1m; default 2 s)",
    )
