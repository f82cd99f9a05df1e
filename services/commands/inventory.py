"""Reading the inventory and editing it by hand: orgs, accounts, registrations, badges, and
standalone accounts."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from orgsync.pipelines import badges
from orgsync.pipelines.account_state import AccountStatus
from orgsync.services.adapters import keys
from orgsync.services.commands.context import (
    Command,
    Context,
    add_external_id,
    duration,
    external_id,
    whole,
)
from orgsync.services.commands.output import counts_text, print_json, table
from orgsync.services.errors import UserError
from orgsync.services.read_models import inventory
from orgsync.services.settings import rate_override_text

BADGE_ARGS = {"add": "KEY=VALUE", "delete": "KEY"}
STATUSES = [s.value for s in AccountStatus]
MAX_REGISTRATIONS = 10_000  # `registrations --limit`, and the API's `?limit=`


def cmd_orgs(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = inventory.organizations(conn)
    if args.json:
        print_json(rows)
        return 0
    print("\n\n".join("\n".join(describe_org(row)) for row in rows) or "no organization yet")
    return 0


WIDTH = 100


def describe_org(row: dict[str, Any]) -> list[str]:
    """One organization as a few labelled lines no wider than WIDTH (the table it replaced was
    664 characters wide): what `orgsync orgs` prints for people."""
    last = row["last_sync"] or {}
    total = sum(row["accounts"].values())
    by_status = ", ".join(f"{n} {status}" for status, n in sorted(row["accounts"].items()))
    fields = {
        "accounts": f"{total}" + (f": {by_status}" if by_status else ""),
        "last sync": (
            f"{str(last['started_at'])[:19].replace('T', ' ')}, "
            f"{sync_state(last, row['throttled_now'])}"
            + (f" ({last['error']})" if last.get("error") else "")
            + (f": {counts_text(last['counts'])}" if last.get("counts") else "")
            if last
            else "never"
        ),
        "last sent": (
            inventory.describe_sent(last.get("sent"))
            if last and last.get("complete") is not None
            else "-"
        ),
        "filters": filters_text(row["filters"]),
        "feed": feed_state(row["feed"]) if row["feed"] else "none (no events queue)",
        "AWS rate": aws_rates(row["aws_budget"]),
    }
    lines = [f"{row['nickname']} ({row['org_id']})"]
    for label, text in fields.items():
        lines += textwrap.wrap(
            text,
            WIDTH,
            initial_indent=f"  {label:<10} ",
            subsequent_indent=" " * 13,
            break_on_hyphens=False,
        )
    return lines


def filters_text(filters: dict[str, Any]) -> str:
    interval = filters["sync_interval_seconds"]
    parts = [
        "exclude " + " ".join(filters["exclude_prefixes"])
        if filters["exclude_prefixes"]
        else "no exclusion",
        "only under " + " ".join(filters["limit_ou_ids"])
        if filters["limit_ou_ids"]
        else "whole organization",
        f"auto-badge {'on' if filters['auto_badge'] else 'off'}",
        f"remove suspended {'on' if filters['auto_remove_suspended'] else 'off'}",
        f"sync every {interval} s" if interval else "sync every ORGSYNC_SYNC_INTERVAL",
    ]
    if filters["aws_rates"]:
        parts.append(f"AWS rates {rate_override_text(filters['aws_rates'])}")
    return "; ".join(parts)


def feed_state(feed: dict[str, Any] | None) -> str:
    """The change-event feed in one cell: queue, events handled, last event, lag, error."""
    if not feed:
        return "-"
    parts = [str(feed["queue"]).rsplit("/", 1)[-1], f"{feed['handled'] or 0} events"]
    if feed.get("last_event_at"):
        parts.append(f"last {str(feed['last_event_at'])[:19].replace('T', ' ')}")
    if feed.get("lag_seconds") is not None:
        parts.append(f"lag {feed['lag_seconds']:.1f} s")
    if feed.get("error"):
        parts.append(f"ERROR {feed['error']} (retry at {feed.get('retry_at')})")
    elif feed.get("polled_at") is None:
        parts.append("not polled yet")
    return ", ".join(parts)


def sync_state(last: dict[str, Any], throttled_now: bool = False) -> str:
    """A sync in a few words: its mode, and whether it runs or how it ended."""
    if not last:
        return "-"
    mode = last.get("mode", "full")
    if last.get("complete") is None:
        # AWS throttled one of its calls within the last minute: slow, and not stuck
        return f"{mode}, running" + (", slowed by AWS throttling" if throttled_now else "")
    return f"{mode}, {'complete' if last['complete'] else 'incomplete'}"


def aws_rates(budget: dict[str, Any]) -> str:
    """The shared rate budget's current rate per API (calls/s), throttled ones first."""
    ranked = sorted(budget.items(), key=lambda item: (-item[1]["throttled"], item[0]))
    return ", ".join(f"{api} {b['rate']}/s" for api, b in ranked) or "-"


def cmd_accounts(ctx: Context, args: argparse.Namespace) -> int:
    badge = None
    if args.badge:
        key, sep, value = args.badge.partition("=")
        if not sep:
            raise UserError("--badge takes KEY=VALUE")
        badge = (key, value)
    with ctx.connect() as conn:
        org_id = ctx.org_id(conn, args.org) if args.org else None
        if args.excluded:
            rows = inventory.excluded(conn, org_id)
            columns = ["account_id", "name", "org_nickname", "org_path", "aws_state", "reason"]
        else:
            rows = inventory.accounts(
                conn,
                org_id=org_id,
                status=args.status,
                badge=badge,
                include_removed=args.include_removed,
            )
            columns = [
                "account_id",
                "name",
                "org_nickname",
                "org_path",
                "status",
                "status_reason",
                "badges",
            ]
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        if isinstance(row.get("badges"), list):
            row["badges"] = ", ".join(
                f"{b['key']}={b['value']}"
                for b in row["badges"]
                if b["key"] not in badges.ORGANIZATION_BADGES  # the org and path columns show them
            )
    print(table(rows, columns))
    print(f"{len(rows)} account(s)")
    return 0


def cmd_registrations(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = inventory.registrations(conn, args.limit)
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        row["verdict"] = {True: "accepted", False: "rejected", None: "pending"}[row["accepted"]]
        row["reasons"] = "; ".join(f"{r['field']}: {r['message']}" for r in row["reasons"])
    print(table(rows, ["received_at", "request_id", "kind", "org_id", "verdict", "reasons"]))
    return 0


def cmd_syncs(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        org_id = ctx.org_id(conn, args.org) if args.org else None
        rows = inventory.syncs(conn, org_id, args.limit)
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        row["state"] = sync_state(row)
        row["sent"] = inventory.describe_sent(row["sent"])
    columns = ["started_at", "nickname", "sync_id", "trigger", "mode", "state", "sent"]
    print(table(rows, columns))
    return 0


def cmd_badges(ctx: Context, args: argparse.Namespace) -> int:
    action, *rest = args.words
    if action in ("add", "delete"):
        return edit_badges(ctx, action, rest)
    if rest:
        raise UserError("give one account id, or add/delete (see `orgsync badges --help`)")
    with ctx.connect() as conn:
        rows = (inventory.badge_history if args.history else inventory.badges)(conn, action)
    if args.json:
        print_json(rows)
        return 0
    columns = ["key", "value", "autogenerated"]
    if args.history:
        columns = ["at", "key", "action", "old_value", "new_value", "by"]
        for row in rows:
            row["by"] = BY[row["source"]].format(sync=row["sync_id"])
    print(table(rows, columns))
    return 0


BY = {"hand": "by hand", "event": "a change event", "sync": "sync {sync}"}
MAX_EVENTS = 10_000


def cmd_events(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        org_id = ctx.org_id(conn, args.org) if args.org else None
        rows = inventory.change_events(conn, org_id, args.limit)
        orgs = [o for o in inventory.organizations(conn) if org_id in (None, o["org_id"])]
    if args.json:
        print_json(rows)
        return 0
    for org in orgs:
        print(
            f"{org['nickname']} ({org['org_id']}) feed: "
            + (feed_state(org["feed"]) if org["feed"] else "none (no events queue)")
        )
    columns = ["handled_at", "org_nickname", "event_name", "target", "outcome", "reason"]
    print(table(rows, columns, ["HANDLED", "ORG", "EVENT", "ACCOUNT/OU", "OUTCOME", "REASON"]))
    print(
        f"{len(rows)} event(s), newest first"
        + (f" (the last {args.limit})" if len(rows) == args.limit else "")
    )
    return 0


def edit_badges(ctx: Context, action: str, words: list[str]) -> int:
    if len(words) < 2:
        raise UserError(f"usage: orgsync badges {action} ACCOUNT_ID {BADGE_ARGS[action]}...")
    account_id, *items = words
    put, delete = {}, []
    for item in items:
        if action == "delete":
            delete.append(item)
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"{item!r}: expected KEY=VALUE")
        put[key] = value
    with ctx.connect() as conn:
        try:
            changes = badges.edit(conn, account_id, put, delete, ctx.by)
        except badges.EditRefused as refused:
            raise UserError(f"nothing changed: {'; '.join(refused.reasons)}") from refused
    if changes is None:
        raise UserError(f"no account {account_id} (see `orgsync accounts`)")
    for change in changes:
        print(f"{change.action} {change.key}" + (f"={change.new.value}" if change.new else ""))
    print(f"{len(changes)} badge change(s) on account {account_id}")
    return 0


def cmd_account(ctx: Context, args: argparse.Namespace) -> int:
    from orgsync.services.use_cases import standalone

    with ctx.connect() as conn:
        if args.account_command == "delete":
            standalone.delete(conn, args.account_id, ctx.by)
            print(f"deleted account {args.account_id}")
            return 0
        creds = standalone.AccountCredentials(
            role_arn=args.role_arn,
            session_name=args.session_name,
            session_duration=args.session_duration,
            external_id=external_id(args),
        )
        keyring = keys.load_keyring(ctx.settings)
        if args.account_command == "add":
            standalone.add(conn, keyring, args.account_id, creds, args.name, ctx.by)
            print(f"added standalone account {args.account_id}")
        else:
            standalone.set_credentials(conn, keyring, args.account_id, creds, ctx.by)
            print(f"replaced the credentials of account {args.account_id}")
    return 0


def add(command: Command) -> None:
    command(
        "orgs", cmd_orgs, "organizations, their filters, account counts and last sync", json=True
    )
    p = command("accounts", cmd_accounts, "the cloud listing", json=True)
    p.add_argument("--org", help="organization id or nickname")
    p.add_argument("--status", choices=STATUSES, help="only accounts with this status")
    p.add_argument("--badge", metavar="KEY=VALUE", help="only accounts carrying this badge")
    p.add_argument("--include-removed", action="store_true", help="also removed accounts")
    p.add_argument(
        "--excluded",
        action="store_true",
        help="what discovery saw but did not import, with the reason",
    )
    p = command("registrations", cmd_registrations, "registration requests and verdicts", json=True)
    p.add_argument(
        "--limit",
        type=whole("--limit", 1, MAX_REGISTRATIONS),
        default=50,
        help=f"the latest N requests (default 50, at most {MAX_REGISTRATIONS})",
    )
    p = command(
        "syncs",
        cmd_syncs,
        "the latest syncs: trigger, mode (full or incremental), state, and the accounts each"
        " sent down the stages and why",
        json=True,
    )
    p.add_argument("--org", help="only this organization's (id or nickname)")
    p.add_argument(
        "--limit",
        type=whole("--limit", 1, MAX_REGISTRATIONS),
        default=20,
        help=f"the latest N syncs (default 20, at most {MAX_REGISTRATIONS})",
    )
    p = command(
        "events",
        cmd_events,
        "change events received from AWS (EventBridge -> SQS) and their outcomes, newest first,"
        " after each organization's feed: queue, events handled, last event, lag, error",
        json=True,
    )
    p.add_argument("--org", help="only this organization's (id or nickname)")
    p.add_argument(
        "--limit",
        type=whole("--limit", 1, MAX_EVENTS),
        default=100,
        help=f"the latest N events (default 100, at most {MAX_EVENTS})",
    )
    p = command(
        "badges",
        cmd_badges,
        "an account's badges (or their history); add or delete a standalone account's badges",
        json=True,
    )
    p.usage = (
        "%(prog)s [--json] [--history] ACCOUNT_ID\n"
        "       %(prog)s add ACCOUNT_ID KEY=VALUE...\n"
        "       %(prog)s delete ACCOUNT_ID KEY..."
    )
    p.add_argument(
        "words",
        nargs="+",
        metavar="ARGS",
        help="an account id to list its badges, or add/delete to edit them by hand (all or"
        " nothing). A managed account's badges mirror its AWS tags: tag it in AWS instead; a"
        " tag-derived badge cannot be deleted here",
    )
    p.add_argument("--history", action="store_true", help="every change, with its sync id")
    p = command("account", cmd_account, "standalone (single) accounts with a role of their own")
    account_sub = p.add_subparsers(dest="account_command", required=True, metavar="ACTION")
    for action, help in (
        ("add", "register one account outside any organization"),
        ("set-credentials", "replace a standalone account's role"),
        ("delete", "delete a standalone account"),
    ):
        a = account_sub.add_parser(action, help=help, description=help)
        a.add_argument("account_id", metavar="ACCOUNT_ID")
        if action == "delete":
            continue
        a.add_argument(
            "--role-arn",
            required=True,
            help="(required) arn:aws:iam::<ACCOUNT_ID>:role/<name>",
        )
        a.add_argument("--session-name", default="orgsync", help="default orgsync")
        a.add_argument(
            "--session-duration",
            type=duration("--session-duration"),
            default=3600,
            metavar="DURATION",
            help="900 to 43200 s; 900, 15m, 1h (default 1h)",
        )
        add_external_id(a)
        if action == "add":
            a.add_argument("--name", help="the account's name (default: its id)")
