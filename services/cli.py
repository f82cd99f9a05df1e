"""`orgsync`: the command line that people, scripts and tests drive (see README.md)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pipelines import badges
from pipelines.credentials import CredentialError
from pipelines.events import STAGES
from pipelines.orgs import resolve_org_id
from pipelines.request_rules import CREDENTIAL_FIELDS
from services import client, db, keys, queues, views
from services.errors import ServiceUnavailable, UserError
from services.output import print_json, table
from services.settings import Settings, SettingsError, parse_duration

BADGE_ARGS = {"add": "KEY=VALUE", "delete": "KEY"}
STAGE_QUEUES = {stage.name: stage.queue for stage in STAGES}


class Context:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def connect(self) -> Any:
        return db.connect(self.settings.database_url)

    def org_id(self, conn: Any, ref: str) -> str:
        org_id = resolve_org_id(conn, ref)
        if org_id is None:
            raise UserError(
                f"no organization {ref!r} (give its id or nickname; see `orgsync orgs`)"
            )
        return org_id


# ---- commands -------------------------------------------------------------------------------


def cmd_migrate(ctx: Context, args: argparse.Namespace) -> int:
    applied = db.migrate(ctx.settings.database_url)
    print(
        f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}"
        f" to {db.describe(ctx.settings.database_url)}"
    )
    return 0


def cmd_worker(ctx: Context, args: argparse.Namespace) -> int:
    stages = args.stages.split(",") if args.stages else list(STAGE_QUEUES)
    unknown = [s for s in stages if s not in STAGE_QUEUES]
    if unknown:
        raise UserError(
            f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGE_QUEUES)}"
        )
    with ctx.connect():  # fail fast, in one line, when PostgreSQL is down
        pass
    queues.depths(ctx.settings.broker_url)  # and when RabbitMQ is
    keys.load_keyring(ctx.settings)
    # prefetch only what the threads can run, so one process cannot starve the others
    os.environ.setdefault("dramatiq_queue_prefetch", str(args.threads))
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "services.worker",
        "--skip-logging",
        "--processes",
        str(args.processes),
        "--threads",
        str(args.threads),
        "--queues",
        *(STAGE_QUEUES[s] for s in stages),
    ]
    os.execv(sys.executable, argv)
    return 0  # not reached


def request_from(args: argparse.Namespace, org_id: str | None) -> dict[str, Any]:
    request: dict[str, Any] = {"request_id": args.request_id or str(uuid.uuid4())}
    if org_id:
        request["org_id"] = org_id
    for name in ("nickname", *CREDENTIAL_FIELDS, "auto_remove_suspended", "auto_badge"):
        value = getattr(args, name)
        if value is not None:
            request[name] = value
    if args.exclude_prefix is not None:
        request["exclude_prefixes"] = args.exclude_prefix
    if args.limit_ou is not None:
        request["limit_ou_ids"] = args.limit_ou
    if args.sync_interval is not None:
        request["sync_interval_seconds"] = args.sync_interval or None
    return request


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
    client.submit(ctx.settings, request)
    if args.no_wait:
        document = {"request_id": request["request_id"], "queued": True}
        print_json(document) if args.json else print(f"queued request {request['request_id']}")
        return 0
    verdict = client.wait_verdict(ctx.settings, request["request_id"], args.timeout)
    if args.json:
        print_json(verdict.as_json())
    else:
        print(
            f"request {verdict.request_id}: {'accepted' if verdict.accepted else 'REJECTED'}"
            f"{' as ' + verdict.org_id if verdict.org_id else ''}"
        )
        for reason in verdict.reasons:
            print(f"  reason  {reason.field}: {reason.message}")
        for warning in verdict.warnings:
            print(f"  warning {warning}")
    return 0 if verdict.accepted else 1


def cmd_sync(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        org_id = ctx.org_id(conn, args.org)
    sync_id = client.sync(ctx.settings, org_id)
    if not args.wait:
        print_json({"org_id": org_id, "sync_id": sync_id}) if args.json else print(
            f"sync {sync_id} of {org_id} started"
        )
        return 0
    progress = client.wait_sync(ctx.settings, sync_id, args.timeout)
    if args.json:
        print_json(progress)
    else:
        sync = progress["sync"]
        print(
            f"sync {sync_id} of {org_id}: {'complete' if sync['complete'] else 'INCOMPLETE'}"
            f"{' (' + sync['error'] + ')' if sync['error'] else ''}; counts {sync['counts']}"
        )
    return 0 if progress["sync"]["complete"] else 1


def cmd_orgs(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = views.organizations(conn)
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        last = row["last_sync"] or {}
        row["last_sync_at"] = last.get("started_at")
        row["sync_state"] = (
            "-"
            if not last
            else "running"
            if last.get("complete") is None
            else "complete"
            if last["complete"]
            else "incomplete"
        )
    print(table(rows, ["org_id", "nickname", "accounts", "filters", "last_sync_at", "sync_state"]))
    return 0


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
            rows = views.excluded(conn, org_id)
            columns = ["account_id", "name", "org_nickname", "org_path", "aws_state", "reason"]
        else:
            rows = views.accounts(
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
            row["badges"] = {
                b["key"]: b["value"]
                for b in row["badges"]
                if b["key"] not in ("system.cloud_organization", "cloud_org_path")
            }
    print(table(rows, columns))
    print(f"{len(rows)} account(s)")
    return 0


def cmd_registrations(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        rows = views.registrations(conn, args.limit)
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        row["verdict"] = {True: "accepted", False: "rejected", None: "pending"}[row["accepted"]]
        row["reasons"] = "; ".join(f"{r['field']}: {r['message']}" for r in row["reasons"])
    print(table(rows, ["received_at", "request_id", "kind", "org_id", "verdict", "reasons"]))
    return 0


def cmd_failed(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        org_id = ctx.org_id(conn, args.org) if args.org else None
        rows = views.failures(conn, org_id)
    if args.json:
        print_json(rows)
        return 0
    columns = ["account_id", "name", "org_id", "code", "message", "attempts"]
    print(table(rows, [*columns, "first_failed_at", "last_failed_at"]))
    print(f"{len(rows)} failed account(s)")
    try:
        dead = client.dead_letter_count(ctx.settings)
    except ServiceUnavailable as error:
        print(f"dead-lettered validations not counted: {error}")
        return 0
    if dead:
        print(
            f"{dead} validation message(s) dead-lettered in {client.DEAD_LETTERS} without an"
            " outcome: `orgsync retry-failed` re-drives them"
        )
    return 0


def cmd_retry_failed(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.connect() as conn:
        org_id = ctx.org_id(conn, args.org) if args.org else None
    result = client.retry_failed(ctx.settings, org_id, args.account, args.code, args.dry_run)
    if args.json:
        print_json({"queued": result.queued, **dataclasses.asdict(result)})
    else:
        print(result.describe())
    return 0


def cmd_badges(ctx: Context, args: argparse.Namespace) -> int:
    action, *rest = args.words
    if action in ("add", "delete"):
        return edit_badges(ctx, action, rest)
    if rest:
        raise UserError("give one account id, or add/delete (see `orgsync badges --help`)")
    with ctx.connect() as conn:
        rows = (views.badge_history if args.history else views.badges)(conn, action)
    if args.json:
        print_json(rows)
        return 0
    columns = ["key", "value", "autogenerated"]
    if args.history:
        columns = ["at", "key", "action", "old_value", "new_value", "sync_id"]
        for row in rows:
            row["sync_id"] = row["sync_id"] or "by hand"
    print(table(rows, columns))
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
            changes = badges.edit(conn, account_id, put, delete)
        except badges.EditRefused as refused:
            raise UserError(f"nothing changed: {'; '.join(refused.reasons)}") from refused
    if changes is None:
        raise UserError(f"no account {account_id} (see `orgsync accounts`)")
    for change in changes:
        print(f"{change.action} {change.key}" + (f"={change.new.value}" if change.new else ""))
    print(f"{len(changes)} badge change(s) on account {account_id}")
    return 0


def cmd_queues(ctx: Context, args: argparse.Namespace) -> int:
    while True:
        rows = queues.depths(ctx.settings.broker_url, ctx.settings.rabbitmq_management_url)
        if args.json:
            print_json(rows)
        else:
            print(
                table(
                    rows, ["queue", "ready", "in_flight", "delayed", "dead_lettered", "consumers"]
                )
            )
        if not args.watch:
            return 0
        time.sleep(args.interval)
        print()


def cmd_exporter(ctx: Context, args: argparse.Namespace) -> int:
    from services import exporter

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    host = args.host or ctx.settings.exporter_host
    port = ctx.settings.exporter_port if args.port is None else args.port
    print(f"exporter: http://{host}:{port}/metrics and /healthz", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        exporter.run(ctx.settings, host, port, stop)
    return 0


def cmd_keys(ctx: Context, args: argparse.Namespace) -> int:
    if args.keys_command == "generate":
        path, key_id = keys.generate(ctx.settings, if_missing=args.if_missing)
        print(f"kept the keys in {path}" if key_id is None else f"wrote key {key_id} to {path}")
        return 0
    with ctx.connect() as conn:
        conn.autocommit = True
        key_id, count = keys.rotate(ctx.settings, conn)
    print(f"key {key_id} is now active; resealed {count} credential(s)")
    return 0


def cmd_scheduler(ctx: Context, args: argparse.Namespace) -> int:
    from services import scheduler

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(
        f"scheduler: a sync of each organization every {ctx.settings.sync_interval:.0f} s",
        file=sys.stderr,
    )
    with contextlib.suppress(KeyboardInterrupt):
        scheduler.run(ctx.settings, stop)
    return 0


def cmd_account(ctx: Context, args: argparse.Namespace) -> int:
    from services import standalone

    with ctx.connect() as conn:
        if args.account_command == "delete":
            standalone.delete(conn, args.account_id)
            print(f"deleted account {args.account_id}")
            return 0
        creds = standalone.AccountCredentials(
            role_arn=args.role_arn,
            session_name=args.session_name,
            session_duration=args.session_duration,
            external_id=args.external_id,
        )
        keyring = keys.load_keyring(ctx.settings)
        if args.account_command == "add":
            standalone.add(conn, keyring, args.account_id, creds, args.name)
            print(f"added standalone account {args.account_id}")
        else:
            standalone.set_credentials(conn, keyring, args.account_id, creds)
            print(f"replaced the credentials of account {args.account_id}")
    return 0


def cmd_web(ctx: Context, args: argparse.Namespace) -> int:
    from services.web import server

    if args.hash_password:
        print(server.hash_from_stdin())
        return 0
    return server.run(ctx.settings, args.host, args.port)


def cmd_demo(ctx: Context, args: argparse.Namespace) -> int:
    from services import demo  # imports the simulated AWS only when asked for

    return demo.run(
        ctx.settings,
        accounts=args.accounts,
        processes=args.processes,
        threads=args.threads,
        timeout=args.timeout,
    )


# ---- parser ---------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="orgsync",
        description="Keep a cloud-security inventory in step with AWS Organizations.",
        epilog="Settings come from the environment: ORGSYNC_DATABASE_URL, ORGSYNC_BROKER_URL, "
        "ORGSYNC_ENCRYPTION_KEYS or ORGSYNC_ENCRYPTION_KEY_FILE, ORGSYNC_SYNC_INTERVAL, "
        "AWS_ENDPOINT_URL and AWS's own variables. See README.md.",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[..., int], help: str, json: bool = False) -> Any:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        if json:
            p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        return p

    command("migrate", cmd_migrate, "create the database if needed and apply schema/ migrations")
    p = command("worker", cmd_worker, "run the stage workers (RabbitMQ consumers)")
    p.add_argument(
        "--stages", help=f"comma-separated subset of {','.join(STAGE_QUEUES)} (default all)"
    )
    p.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--threads", type=int, default=8, help="threads per process (default 8)")

    for name, update in (("register", False), ("update", True)):
        p = command(
            name,
            cmd_register,
            "update an organization: credential fields all or none, filters alone"
            if update
            else "register an AWS organization",
            json=True,
        )
        if update:
            p.add_argument("org", help="organization id or nickname")
        p.add_argument("--request-id", help="your id for the request (default: a new uuid)")
        p.add_argument("--nickname")
        p.add_argument("--org-role-arn", help="arn:aws:iam::<management account>:role/<name>")
        p.add_argument("--org-session-name")
        p.add_argument("--org-session-duration", type=int, metavar="SECONDS")
        p.add_argument("--member-role-name", help="role name (with optional path) in every member")
        p.add_argument("--member-session-name")
        p.add_argument("--member-session-duration", type=int, metavar="SECONDS")
        p.add_argument("--external-id")
        p.add_argument(
            "--exclude-prefix",
            action="append",
            metavar="PREFIX",
            help="exclude accounts whose name starts with PREFIX (repeatable)",
        )
        p.add_argument("--auto-remove-suspended", action=argparse.BooleanOptionalAction)
        p.add_argument("--auto-badge", action=argparse.BooleanOptionalAction)
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
        p.add_argument("--no-wait", action="store_true", help="return once the request is queued")
        p.add_argument("--timeout", type=float, default=120, help="seconds to wait for the verdict")

    p = command("sync", cmd_sync, "start a sync of an organization now", json=True)
    p.add_argument("org", help="organization id or nickname")
    p.add_argument("--wait", action="store_true", help="wait until every account is reconciled")
    p.add_argument("--timeout", type=float, default=600)

    command("scheduler", cmd_scheduler, "start a sync of every organization each interval")
    command(
        "orgs", cmd_orgs, "organizations, their filters, account counts and last sync", json=True
    )
    p = command("accounts", cmd_accounts, "the cloud listing", json=True)
    p.add_argument("--org", help="organization id or nickname")
    p.add_argument(
        "--status", choices=["pending", "ok", "assume_role_failed", "suspended", "removed"]
    )
    p.add_argument("--badge", metavar="KEY=VALUE", help="only accounts carrying this badge")
    p.add_argument("--include-removed", action="store_true", help="also removed accounts")
    p.add_argument(
        "--excluded",
        action="store_true",
        help="what discovery saw but did not import, with the reason",
    )
    p = command("registrations", cmd_registrations, "registration requests and verdicts", json=True)
    p.add_argument("--limit", type=int, default=50)
    p = command("failed", cmd_failed, "accounts whose validation failed, and why", json=True)
    p.add_argument("--org")
    p = command(
        "retry-failed",
        cmd_retry_failed,
        "validate failed accounts (and dead-lettered validations) again, with a fresh retry"
        " budget; prints how many it queued",
        json=True,
    )
    p.add_argument("--org")
    p.add_argument("--account", help="only this account id")
    p.add_argument("--code", help="only failures with this AWS error code")
    p.add_argument("--dry-run", action="store_true", help="only say how many would be queued")
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
    p = command("queues", cmd_queues, "each queue's depth and consumers", json=True)
    p.add_argument("--watch", action="store_true", help="print again every --interval seconds")
    p.add_argument("--interval", type=float, default=2.0)
    p = command("exporter", cmd_exporter, "serve Prometheus /metrics and /healthz for the pipeline")
    p.add_argument("--host", help="address to listen on (default ORGSYNC_EXPORTER_HOST)")
    p.add_argument("--port", type=int, help="port (default ORGSYNC_EXPORTER_PORT, 9464)")
    p = command("keys", cmd_keys, "credential encryption keys")
    keys_sub = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    g = keys_sub.add_parser("generate", help="write a key file with a new key")
    g.add_argument("--if-missing", action="store_true", help="keep an existing key file")
    keys_sub.add_parser("rotate", help="add a newer key and reseal every credential under it")
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
        a.add_argument("--role-arn", required=True, help="arn:aws:iam::<ACCOUNT_ID>:role/<name>")
        a.add_argument("--session-name", default="orgsync")
        a.add_argument("--session-duration", type=int, default=3600, metavar="SECONDS")
        a.add_argument("--external-id")
        if action == "add":
            a.add_argument("--name", help="the account's name (default: its id)")
    p = command("web", cmd_web, "serve the web console and the HTTP API (/api/)")
    p.add_argument("--host", help="address to listen on (default ORGSYNC_WEB_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default ORGSYNC_WEB_PORT, 8080)")
    p.add_argument(
        "--hash-password",
        action="store_true",
        help="print ORGSYNC_WEB_PASSWORD_HASH for the password read from stdin, and exit",
    )
    p = command(
        "demo", cmd_demo, "the whole pipeline against an embedded simulated AWS organization"
    )
    p.add_argument("--accounts", type=int, default=60)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--timeout", type=float, default=300)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        from services.logs import configure

        configure(settings.log_level, settings.log_format)
        return int(args.func(Context(settings), args))
    except (ServiceUnavailable, UserError, SettingsError, CredentialError) as error:
        print(f"orgsync: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
