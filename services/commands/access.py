"""`orgsync grants` and `orgsync tokens`: who may use the console and the API, and with what role
(docs/security.md). Changes made here are made as `cli:<os user>`, an administrator."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from orgsync.pipelines.access import Role, lifetime
from orgsync.services.commands.context import Command, Context
from orgsync.services.commands.output import print_json, table
from orgsync.services.errors import UserError
from orgsync.services.use_cases import access, sessions

DEFAULT_LIFETIME = "90d"


def cmd_grants(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        org_id = ctx.org_id(conn, args.org) if getattr(args, "org", None) else None
        if args.grants_command == "add":
            access.add_grant(conn, args.group, args.role, org_id)
            granted = {"group": args.group, "role": str(args.role)}
            ctx.by.record(conn, "grant.add", org_id, granted, subject=args.group)
            print(f"group {args.group!r}: {args.role} on {org_id or 'every organization'}")
        elif args.grants_command == "list":
            rows = access.list_grants(conn)
            if args.json:
                print_json(rows)
            else:
                print(table(rows, ["group", "role", "org_id", "org_nickname", "created_at"]))
        else:
            if not access.remove_grant(conn, args.group, org_id):
                where = f"on {org_id}" if org_id else "on every organization"
                raise UserError(f"group {args.group!r} has no grant {where} (see grants list)")
            sessions.void_group(conn, args.group)
            ctx.by.record(conn, "grant.remove", org_id, {"group": args.group}, subject=args.group)
            print(f"removed the grant of {args.group!r}; its members sign in again")
    return 0


def cmd_tokens(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        if args.tokens_command == "create":
            org_id = ctx.org_id(conn, args.org) if args.org else None
            token, expires = access.create_token(conn, args.name, args.role, org_id, args.expires)
            made = {"role": str(args.role), "expires_at": expires and expires.isoformat()}
            ctx.by.record(conn, "token.create", org_id, made, subject=args.name)  # never the token
            conn.commit()  # stored, with its audit row, before it is shown
            print(token)  # alone on stdout: `TOKEN=$(orgsync tokens create ...)`
            when = f"expires {expires:%Y-%m-%d %H:%M} UTC" if expires else "never expires"
            scope = org_id or "every organization"
            print(f"token {args.name}: {args.role} on {scope}, {when}", file=sys.stderr)
        elif args.tokens_command == "list":
            rows = access.list_tokens(conn)
            if args.json:
                print_json(rows)
            else:
                columns = ["name", "role", "org_id", "created_at", "expires_at", "expired"]
                print(table(rows, [*columns, "last_used_at"]))
        else:
            if not access.revoke_token(conn, args.name):
                raise UserError(f"no token {args.name!r} (`orgsync tokens list`)")
            ctx.by.record(conn, "token.revoke", None, {}, subject=args.name)
            print(f"revoked token {args.name}")
    return 0


def role(text: str) -> Role:
    try:
        return Role.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def expires_in(text: str) -> float | None:
    try:
        return lifetime(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


role.__name__ = "role"
expires_in.__name__ = "lifetime"


def add(command: Command) -> None:
    p = command("grants", cmd_grants, "roles for the identity provider's groups (OIDC sign-in)")
    sub = p.add_subparsers(dest="grants_command", required=True, metavar="ACTION")
    a = sub.add_parser("add", help="give a group a role, on one organization or on all")
    a.add_argument("group", metavar="GROUP", help="a group as the groups claim names it")
    _role_and_org(a, "the organization (id or nickname); default: every organization")
    a = sub.add_parser("list", help="every grant")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    a = sub.add_parser("remove", help="take a grant away; its group's sessions end")
    a.add_argument("group", metavar="GROUP")
    a.add_argument("--org", help="the grant on this organization (default: the one on all)")

    p = command("tokens", cmd_tokens, "named API tokens with a role (the API's Bearer token)")
    sub = p.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    a = sub.add_parser("create", help="a new token, printed once on stdout")
    a.add_argument("name", metavar="NAME", help="1-64 letters, digits, '.', '_', '-'")
    _role_and_org(a, "the one organization it sees (id or nickname); default: every one")
    a.add_argument(
        "--expires-in",
        dest="expires",
        type=expires_in,
        default=expires_in(DEFAULT_LIFETIME),
        metavar="DURATION",
        help=f"30m, 12h, 90d, 8w (at most 2 years) or never; default {DEFAULT_LIFETIME}",
    )
    a = sub.add_parser("list", help="every token: name, role, expiry, last use (never the token)")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    a = sub.add_parser("revoke", help="the token stops working at once, in every process")
    a.add_argument("name", metavar="NAME")


def _role_and_org(p: Any, org_help: str) -> None:
    p.add_argument("--role", required=True, type=role, help="(required) viewer, operator or admin")
    p.add_argument("--org", help=org_help)
