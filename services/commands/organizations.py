"""Registering and updating organizations, and starting or following their syncs."""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

from orgsync.pipelines.request_rules import CREDENTIAL_FIELDS
from orgsync.pipelines.resync import FULL, INCREMENTAL
from orgsync.services.commands.context import (
    Command,
    Context,
    add_external_id,
    duration,
    external_id,
)
from orgsync.services.commands.output import print_json
from orgsync.services.errors import UserError
from orgsync.services.read_models import sync_progress
from orgsync.services.settings import SettingsError, parse_duration, parse_rate_override
from orgsync.services.use_cases import registering, syncs


def request_from(args: argparse.Namespace, org_id: str | None) -> dict[str, Any]:
    request: dict[str, Any] = {"request_id": args.request_id or str(uuid.uuid4())}
    if org_id:
        request["org_id"] = org_id
    for name in ("nickname", *CREDENTIAL_FIELDS, "auto_remove_suspended", "auto_badge"):
        value = external_id(args) if name == "external_id" else getattr(args, name)
        if value is not None:
            request[name] = value
    if args.exclude_prefix is not None:
        request["exclude_prefixes"] = args.exclude_prefix
    if args.limit_ou is not None:
        request["limit_ou_ids"] = args.limit_ou
    if args.sync_interval is not None:
        request["sync_interval_seconds"] = args.sync_interval or None
    if args.events_queue_url is not None:
        request["events_queue_url"] = args.events_queue_url or None
    if args.aws_rates is not None:
        request["aws_rates"] = args.aws_rates or None
    return request


def events_queue_url(text: str) -> str:
    """`--events-queue-url`: an SQS queue URL; `none` ("" here) clears it."""
    return "" if text.strip().lower() == "none" else text


def aws_rates(text: str) -> dict[str, dict[str, float]]:
    """`--aws-rates`: API=FLOOR:CEILING[,...] as in ORGSYNC_AWS_RATES; `none` or `default` ({}
    here) clears the override."""
    try:
        return parse_rate_override(text, "--aws-rates") or {}
    except SettingsError as error:
        raise argparse.ArgumentTypeError(f"{error}; or none for no override") from error


def sync_interval(text: str) -> int:
    """`--sync-interval`: a duration such as 3600, 90m or 6h; `default` (0) clears it."""
    if text.strip().lower() == "default":
        return 0
    try:
        return round(parse_duration(text, "--sync-interval"))
    except SettingsError as error:
        raise argparse.ArgumentTypeError(f"{error}, or default") from error


def cmd_register(ctx: Context, args: argparse.Namespace) -> int:
    org_id = None
    if getattr(args, "org", None):
        with ctx.connect() as conn:
            org_id = ctx.org_id(conn, args.org)
    request = request_from(args, org_id)
    registering.submit(ctx.house, request, ctx.by)
    if args.no_wait:
        document = {"request_id": request["request_id"], "queued": True}
        print_json(document) if args.json else print(f"queued request {request['request_id']}")
        return 0
    verdict = registering.wait_verdict(ctx.house, request["request_id"], args.timeout, request)
    if args.json:
        print_json(verdict.as_json())
        return 0 if verdict.accepted else 1
    print(
        f"request {verdict.request_id}: {'accepted' if verdict.accepted else 'REJECTED'}"
        f"{' as ' + verdict.org_id if verdict.org_id else ''}"
    )
    for reason in verdict.reasons:
        print(f"  reason  {reason.field}: {reason.message}")
    for warning in verdict.warnings:
        print(f"  warning {warning}")
    if not verdict.accepted:
        return 1
    sync_id = sync_progress.started_by(ctx.settings, verdict.request_id)
    if sync_id is None:
        return 0
    print(f"sync {sync_id} started (`orgsync sync --attach {sync_id}` follows it)")
    follow = sys.stdout.isatty() if args.follow is None else args.follow
    return show_sync(ctx, sync_id, args.sync_timeout, json=False) if follow else 0


def cmd_sync(ctx: Context, args: argparse.Namespace) -> int:
    if (args.org is None) == (args.attach is None):
        raise UserError("give an organization to sync, or --attach SYNC_ID to follow one")
    if args.attach:
        return show_sync(ctx, args.attach, args.timeout, json=args.json)
    with ctx.connect() as conn:
        org_id = ctx.org_id(conn, args.org)
    mode = INCREMENTAL if args.incremental else FULL
    sync_id = syncs.sync(
        ctx.house, org_id, confirm_removals=args.confirm_removals, mode=mode, by=ctx.by
    )
    if not args.wait:
        print_json({"org_id": org_id, "sync_id": sync_id, "mode": mode}) if args.json else print(
            f"{mode} sync {sync_id} of {org_id} started"
        )
        return 0
    if not args.json:
        print(f"{mode} sync {sync_id} of {org_id} started")
    return show_sync(ctx, sync_id, args.timeout, json=args.json)


def show_sync(ctx: Context, sync_id: str, timeout: float, *, json: bool) -> int:
    """Follow a sync to its end: progress and a summary for people, one document for scripts."""
    try:
        uuid.UUID(sync_id)
    except ValueError:
        raise UserError(f"{sync_id!r} is not a sync id (a UUID)") from None
    snap = sync_progress.follow(ctx.settings, sync_id, timeout, None if json else sys.stdout)
    if json:
        print_json({"sync": snap.sync, "stages": snap.stages})
    else:
        totals = sync_progress.sync_summary(ctx.settings, sync_id)
        print("\n".join(sync_progress.describe_summary(sync_id, snap, totals)))
        if snap.sync and snap.sync.get("held"):
            print(f"held: {snap.sync['held']}")
    return 0 if snap.sync and snap.sync["complete"] and not snap.sync.get("held") else 1


def add(command: Command) -> None:
    for name, update in (("register", False), ("update", True)):
        p = command(
            name,
            cmd_register,
            "update an organization: credential fields all or none, filters alone"
            if update
            else "register an AWS organization (the flags marked required must be given)",
            json=True,
        )
        add_request_flags(p, update)
    p = command(
        "sync",
        cmd_sync,
        "start a sync of an organization now (--wait follows it), or follow one (--attach)",
        json=True,
    )
    p.usage = "%(prog)s [-h] [--json] ORG [--incremental] [--wait] [--timeout DURATION]\n" + (
        "       %(prog)s [-h] [--json] --attach SYNC_ID [--timeout DURATION]"
    )
    p.add_argument("org", nargs="?", metavar="ORG", help="organization id or nickname")
    p.add_argument(
        "--incremental",
        action="store_true",
        help="walk the whole tree but send down the stages only the accounts that are new,"
        " changed, failed, or validated or harvested longer ago than ORGSYNC_REVALIDATE_AFTER /"
        " ORGSYNC_REHARVEST_AFTER (default: a full sync, every account)",
    )
    p.add_argument(
        "--confirm-removals",
        action="store_true",
        help="let this sync's walk remove accounts even past the removal guard's limit"
        " (ORGSYNC_REMOVAL_LIMIT): after a sync held because it would remove too many",
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="follow the sync until every account is reconciled: a live per-stage line on a"
        " terminal, then a summary",
    )
    p.add_argument("--attach", metavar="SYNC_ID", help="follow a sync already running")
    p.add_argument(
        "--timeout",
        type=duration("--timeout"),
        default=600,
        metavar="DURATION",
        help="stop following after this long; the sync goes on (default 10m)",
    )


def add_request_flags(p: argparse.ArgumentParser, update: bool) -> None:
    required = "" if update else "(required) "
    if update:
        p.add_argument("org", help="organization id or nickname")
    p.add_argument("--request-id", help="your id for the request (default: a new uuid)")
    p.add_argument(
        "--nickname", help=f"{required}a unique name for the organization, 1-64 characters"
    )
    p.add_argument(
        "--org-role-arn",
        help=f"{required}arn:aws:iam::<management account>:role/<name>: the role orgsync assumes"
        " to read the organization (`orgsync iam-policy --org`)",
    )
    p.add_argument(
        "--org-session-name",
        help="session name for that role, shown in CloudTrail: 2-64 of [\\w+=,.@-]"
        " (default orgsync)",
    )
    p.add_argument(
        "--org-session-duration",
        type=duration("--org-session-duration"),
        metavar="DURATION",
        help="session length for that role, 900 to 43200 s: 900, 15m, 1h (default 1h)",
    )
    p.add_argument(
        "--member-role-name",
        help=f"{required}role name (with optional path) in every member account"
        " (deploy/aws/member-role-stackset.yaml creates it)",
    )
    p.add_argument(
        "--member-session-name",
        help="session name for the member role: 2-64 of [\\w+=,.@-] (default orgsync)",
    )
    p.add_argument(
        "--member-session-duration",
        type=duration("--member-session-duration"),
        metavar="DURATION",
        help="session length for the member role, 900 to 43200 s: 900, 15m, 1h (default 1h)",
    )
    add_external_id(p)
    p.add_argument(
        "--exclude-prefix",
        action="append",
        metavar="PREFIX",
        help="exclude accounts whose name starts with PREFIX (repeatable)",
    )
    p.add_argument(
        "--auto-remove-suspended",
        action=argparse.BooleanOptionalAction,
        help="remove suspended accounts instead of keeping them as suspended (default off)",
    )
    p.add_argument(
        "--auto-badge",
        action=argparse.BooleanOptionalAction,
        help="make each account's badges mirror its AWS tags (default off)",
    )
    p.add_argument(
        "--limit-ou",
        action="append",
        metavar="ID",
        help="import only accounts under this OU or root id (repeatable)",
    )
    p.add_argument(
        "--sync-interval",
        type=sync_interval,
        metavar="DURATION",
        help="how often the scheduler syncs this organization (3600, 90m, 6h; 60 s to 7 days);"
        " `default` follows ORGSYNC_SYNC_INTERVAL",
    )
    p.add_argument(
        "--events-queue-url",
        type=events_queue_url,
        metavar="URL",
        help="SQS queue receiving the organization's change events (deploy/aws/events-queue.yaml);"
        " the organization role must receive and delete on it; `none` clears it",
    )
    p.add_argument(
        "--aws-rates",
        type=aws_rates,
        metavar="SPEC",
        help="this organization's floor and ceiling for its Organizations calls, in calls/s,"
        " over ORGSYNC_AWS_RATES: API=FLOOR:CEILING[,API=FLOOR:CEILING...] (`*` for every"
        " Organizations API not named, such as *=1:20,ListParents=0.5:5; up to 1000 calls/s);"
        " `none` or `default` clears it",
    )
    p.add_argument("--no-wait", action="store_true", help="return once the request is queued")
    p.add_argument(
        "--timeout",
        type=duration("--timeout"),
        default=120,
        metavar="DURATION",
        help="how long to wait for the verdict (default 2m)",
    )
    p.add_argument(
        "--follow",
        action=argparse.BooleanOptionalAction,
        help="after an accepted verdict, follow the sync it started: progress, then a summary"
        " (default: on a terminal, and never with --json)",
    )
    p.add_argument(
        "--sync-timeout",
        type=duration("--sync-timeout"),
        default=600,
        metavar="DURATION",
        help="how long --follow follows; the sync goes on (default 10m)",
    )
