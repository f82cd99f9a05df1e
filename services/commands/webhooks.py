"""`orgsync webhooks`: the receivers every change event is POSTed to
(docs/events-for-other-systems.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from orgsync.pipelines import webhooks as rules
from orgsync.pipelines.outbound import EVENT_TYPES
from orgsync.services.commands.context import Command, Context, whole
from orgsync.services.commands.output import print_json, table
from orgsync.services.errors import UserError
from orgsync.services.use_cases import webhooks

MAX_DELIVERIES = 10_000


def cmd_webhooks(ctx: Context, args: argparse.Namespace) -> int:
    action = args.webhooks_command
    with ctx.connect() as conn:
        if action == "add":
            org_id = ctx.org_id(conn, args.org) if args.org else None
            try:
                secret = Path(args.secret_file).read_text()
                types = rules.parse_types(args.types)
            except (OSError, UnicodeDecodeError, ValueError) as error:
                raise UserError(str(error)) from error
            print(webhooks.add(conn, ctx.house.keyring, args.url, secret, org_id, types, ctx.by))
        elif action == "list":
            org_id = ctx.org_id(conn, args.org) if args.org else None
            rows = webhooks.listing(conn, org_id)
            if args.json:
                print_json(rows)
            else:
                columns = ["webhook_id", "url", "org_id", "types", "pending", "delivered"]
                print(table(rows, [*columns, "failed", "last_delivered_at"]))
        elif action == "remove":
            if not webhooks.remove(conn, args.webhook_id, ctx.by):
                raise UserError(f"no webhook {args.webhook_id!r} (see `orgsync webhooks list`)")
            print(f"removed webhook {args.webhook_id}")
        elif action == "deliveries":
            found = webhooks.deliveries(conn, args.webhook_id, args.state, args.limit)
            if found is None:
                raise UserError(f"no webhook {args.webhook_id!r} (see `orgsync webhooks list`)")
            if args.json:
                print_json(found)
            else:
                columns = ["delivery_id", "event_id", "type", "subject", "state", "attempts"]
                print(table(found, [*columns, "last_status", "last_error", "next_attempt_at"]))
        else:
            webhook_id = webhooks.redeliver(conn, args.delivery_id, ctx.by)
            if webhook_id is None:
                raise UserError(f"no delivery {args.delivery_id} of a webhook still in place")
            print(f"delivery {args.delivery_id} to {webhook_id} is sent again")
    return 0


def add(command: Command) -> None:
    p = command(
        "webhooks", cmd_webhooks, "receivers of every change event, signed (Standard Webhooks)"
    )
    sub = p.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")
    a = sub.add_parser("add", help="add a receiver; prints its id", description="add a receiver")
    a.add_argument("url", metavar="URL", help="http(s) URL the events are POSTed to")
    a.add_argument(
        "--secret-file",
        required=True,
        help="(required) a file holding the Standard Webhooks secret, whsec_ and base64",
    )
    a.add_argument("--org", help="only this organization's events (id or nickname)")
    a.add_argument(
        "--types", help=f"comma-separated event types (default all: {', '.join(EVENT_TYPES)})"
    )
    a = sub.add_parser("list", help="the webhooks and their deliveries by state")
    a.add_argument("--org", help="only webhooks of this organization")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    a = sub.add_parser("remove", help="stop sending to a webhook")
    a.add_argument("webhook_id", metavar="ID")
    a = sub.add_parser("deliveries", help="a webhook's latest deliveries, newest first")
    a.add_argument("webhook_id", metavar="ID")
    a.add_argument(
        "--state", choices=webhooks.DELIVERY_STATES, help="only deliveries in this state"
    )
    a.add_argument(
        "--limit",
        type=whole("--limit", 1, MAX_DELIVERIES),
        default=100,
        help=f"at most N (default 100, at most {MAX_DELIVERIES})",
    )
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    a = sub.add_parser("redeliver", help="send a delivery again: same id, same body")
    a.add_argument("delivery_id", metavar="DELIVERY_ID", type=whole("DELIVERY_ID", 1, 2**63 - 1))
