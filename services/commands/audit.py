"""`orgsync audit`: the audit trail, newest first (pipelines/audit.py writes it)."""

from __future__ import annotations

import argparse

from orgsync.pipelines import audit
from orgsync.services.commands.context import Command, Context, whole
from orgsync.services.commands.output import changes_text, print_json, table

MAX_ROWS = 10_000


def cmd_audit(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        org_id = ctx.org_id(conn, args.org) if args.org else None
        rows = audit.trail(conn, org_id, args.limit)
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        row["changes"] = changes_text(row["changes"])
    columns = ["at", "actor", "via", "action", "org_id", "subject", "changes"]
    print(table(rows, columns))
    return 0


def add(command: Command) -> None:
    p = command(
        "audit",
        cmd_audit,
        "the audit trail, newest first: who changed what, when, through which door",
        json=True,
    )
    p.add_argument("--org", help="only this organization's changes (id or nickname)")
    p.add_argument(
        "--limit",
        type=whole("--limit", 1, MAX_ROWS),
        default=100,
        help=f"the latest N changes (default 100, at most {MAX_ROWS})",
    )
