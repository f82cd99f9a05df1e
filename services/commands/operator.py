"""Running the pipeline day to day: failed validations, re-driving them, queue depth."""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

from orgsync.pipelines.credentials import CredentialError
from orgsync.pipelines.orgs import load_organization
from orgsync.services.adapters import dead_letters, keys, queue_migration, queue_types, queues
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
        depths = queues.depths(ctx.settings.broker_url)
    except ServiceUnavailable as error:
        print(f"dead-lettered messages not counted: {error}")
        return 0
    for line in dead_lettered(depths):
        print(line)
    return 0


def dead_lettered(depths: list[dict[str, Any]]) -> Iterator[str]:
    """A line per queue whose `Q.XQ` holds messages: those dramatiq gave up on, and those
    RabbitMQ took out of a quorum queue past its delivery limit (their consumers kept dying)."""
    for row in depths:
        if not row["dead_lettered"]:
            continue
        where = f"{row['queue']}.XQ"
        if where == dead_letters.DEAD_LETTERS:
            yield (
                f"{row['dead_lettered']} validation message(s) dead-lettered in {where} without"
                " an outcome: `orgsync retry-failed` re-drives them"
            )
        else:
            yield (
                f"{row['dead_lettered']} message(s) dead-lettered in {where}: their worker failed"
                " on them, or kept dying while holding them (the delivery limit:"
                " docs/operations.md#the-delivery-limit-and-dead-letters)"
            )


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
    result = redrive.retry_failed(
        ctx.house, org_id, args.account, args.code, args.dry_run, by=ctx.by
    )
    if args.json:
        print_json({"queued": result.queued, **dataclasses.asdict(result)})
    else:
        print(result.describe())
    return 0


QUEUE_COLUMNS = ["queue", "ready", "in_flight", "delayed", "dead_lettered", "consumers"]
OUTBOX_COLUMNS = ["held", "outbox_in_flight"]
WAITING_COLUMNS = ["org_id", "org", "queue", "lane", "held", "in_flight"]


def cmd_queues(ctx: Context, args: argparse.Namespace) -> int:
    if args.action == "migrate":
        return migrate_queues(ctx, args)
    if args.to:
        raise UserError("--to goes with `orgsync queues migrate --to quorum|classic`")
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


def migrate_queues(ctx: Context, args: argparse.Namespace) -> int:
    if not args.to:
        raise UserError("orgsync queues migrate: say the type, --to quorum or --to classic")
    moved = queue_migration.migrate(
        ctx.settings.broker_url, args.to, report=(lambda m: None) if args.json else print_moved
    )
    if args.json:
        print_json([dataclasses.asdict(m) for m in moved])
        return 0
    changed = sum(m.migrated for m in moved)
    if dropped := sum(m.dropped for m in moved):
        print(
            f"{dropped} message(s) published in the instant a quorum queue was deleted were"
            " dropped with it: the stuck-sync re-drive (ORGSYNC_STUCK_AFTER) sends their pages"
            " again"
        )
    print(
        f"{changed} queue(s) moved to {args.to}, {sum(m.messages for m in moved)} message(s)"
        f" with them; every orgsync queue is {args.to} now"
        + (f": set ORGSYNC_QUEUE_TYPE={args.to} (or leave it unset)" if changed else "")
    )
    return 0


def print_moved(moved: queue_migration.Moved) -> None:
    what = f"moved, {moved.messages} message(s)" if moved.migrated else "already of the type"
    print(f"{moved.queue}: {what}", flush=True)


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
    p.add_argument(
        "action",
        nargs="?",
        choices=["migrate"],
        help="migrate: move every orgsync queue to the type --to says, messages and all,"
        " workers running or not",
    )
    p.add_argument("--to", choices=queue_types.TYPES, help="the queue type `migrate` moves to")
    p.add_argument("--watch", action="store_true", help="print again every --interval seconds")
    p.add_argument(
        "--interval",
        type=duration("--interval", whole=False),
        default=2.0,
        metavar="DURATION",
        help="how often --watch prints (2, 0.5s, 1m; default 2 s)",
    )
