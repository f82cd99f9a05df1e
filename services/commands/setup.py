"""Setting orgsync up: the database, the keys, the AWS roles, and checking all of it."""

from __future__ import annotations

import argparse
import sys

from orgsync.services.adapters import db, keys
from orgsync.services.commands.context import Command, Context
from orgsync.services.commands.output import print_json
from orgsync.services.errors import UserError
from orgsync.services.use_cases import check, iam_policy


def cmd_migrate(ctx: Context, args: argparse.Namespace) -> int:
    applied = db.migrate(ctx.settings.database_url)
    print(
        f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}"
        f" to {db.describe(ctx.settings.database_url)}"
    )
    return 0


def cmd_keys(ctx: Context, args: argparse.Namespace) -> int:
    if args.keys_command == "generate":
        path, key_id = keys.generate(
            ctx.settings, if_missing=args.if_missing, lost_keys=args.lost_keys
        )
        print(f"kept the keys in {path}" if key_id is None else f"wrote key {key_id} to {path}")
        return 0
    with ctx.connect() as conn:
        conn.autocommit = True
        key_id, count = keys.rotate(ctx.settings, conn)
        # resealing commits row by row (services/adapters/keys.py), so the rotation is recorded
        # once it is done, in a transaction of its own
        with conn.transaction():
            rotated = {"active_key_id": key_id, "resealed": count}
            ctx.by.record(conn, "keys.rotate", None, rotated)
    print(f"key {key_id} is now active; resealed {count} credential(s)")
    return 0


def cmd_check(ctx: Context, args: argparse.Namespace) -> int:
    verdicts = check.run(ctx.settings, args.org)
    if args.json:
        print_json([v.as_json() for v in verdicts])
    else:
        print("\n".join(v.line() for v in verdicts))
    return 0 if check.passed(verdicts) else 1


def cmd_iam_policy(ctx: Context, args: argparse.Namespace) -> int:
    if args.member or args.trust:
        if args.principal is None:
            raise UserError(
                "a trust policy names the principal orgsync runs as: give --principal ARN"
                f" ({iam_policy.FIND_PRINCIPAL})"
            )
        problem = iam_policy.principal_problem(args.principal)
        if problem:
            raise UserError(f"--principal: {problem}")
        if args.member:
            print(
                "orgsync only assumes the member role: it needs this trust policy and no"
                " permissions (deploy/aws/member-role-stackset.yaml creates it everywhere)",
                file=sys.stderr,
            )
        print_json(iam_policy.trust(args.principal, args.external_id_condition))
    else:
        print_json(iam_policy.org_permissions())
    return 0


def add(command: Command) -> None:
    command("migrate", cmd_migrate, "create the database if needed and apply schema/ migrations")
    p = command("keys", cmd_keys, "credential encryption keys")
    keys_sub = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    g = keys_sub.add_parser("generate", help="write a key file with a new key")
    g.add_argument("--if-missing", action="store_true", help="keep an existing key file")
    g.add_argument(
        "--lost-keys",
        action="store_true",
        help="write a new key although stored credentials are sealed under keys that are lost"
        " for good (refused otherwise); every organization's roles must then be given again",
    )
    keys_sub.add_parser("rotate", help="add a newer key and reseal every credential under it")
    p = command(
        "check",
        cmd_check,
        "check every dependency (PostgreSQL, migrations, RabbitMQ, queues, keys, AWS"
        " credentials, and with --org that organization's roles): one line each with the fix;"
        " exits 0 only when all pass",
        json=True,
    )
    p.add_argument("--org", help="also check this organization's roles (id or nickname)")
    p = command(
        "iam-policy",
        cmd_iam_policy,
        "print the IAM policy JSON a role needs (exactly the actions orgsync calls)",
    )
    role = p.add_mutually_exclusive_group()
    role.add_argument(
        "--org",
        action="store_true",
        help="the organization management role's permissions policy (the default)",
    )
    role.add_argument(
        "--member",
        action="store_true",
        help="the member role's trust policy (it needs no permissions)",
    )
    p.add_argument(
        "--trust", action="store_true", help="the trust policy instead of the permissions"
    )
    p.add_argument(
        "--principal",
        metavar="ARN",
        help="in a trust policy (required there): the IAM role or user orgsync runs as"
        " (`aws sts get-caller-identity` shows it; for an assumed-role session, its role)",
    )
    p.add_argument(
        "--external-id-condition",
        action="store_true",
        help=f"in a trust policy: require sts:ExternalId ({iam_policy.EXTERNAL_ID_PLACEHOLDER}"
        " is left for you to replace)",
    )
