"""`orgsync`: the command line that people, scripts and tests drive (see README.md).

The sub-commands live in services/commands/, one module per group; this module puts them in
one parser and turns every error a user can act on into one line on stderr with exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import psycopg

from orgsync.pipelines.credentials import CredentialError
from orgsync.services.commands import (
    access,
    audit,
    inventory,
    operator,
    organizations,
    processes,
    setup,
    webhooks,
)
from orgsync.services.commands.context import Context
from orgsync.services.errors import ServiceUnavailable, UserError
from orgsync.services.settings import Settings, SettingsError

# the command groups, in the order `orgsync --help` lists them
GROUPS = (setup, organizations, inventory, operator, webhooks, access, audit, processes)
# long-running processes keep their structured logs on stderr (the worker's come from its
# dramatiq processes, which configure their own); other commands show them only with
# --verbose, so that a library's warnings never come before a one-line answer, and pika's
# reports of a failed connection, which the one line says better, only with --verbose
LOGGING_COMMANDS = frozenset({"scheduler", "exporter", "web", "demo"})


def version() -> str:
    try:
        return metadata.version("orgsync")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="orgsync",
        description="Keep a cloud-security inventory in step with AWS Organizations.",
        epilog="Settings come from the environment: ORGSYNC_DATABASE_URL, ORGSYNC_BROKER_URL, "
        "ORGSYNC_ENCRYPTION_KEYS or ORGSYNC_ENCRYPTION_KEY_FILE, ORGSYNC_SYNC_INTERVAL, "
        "AWS_ENDPOINT_URL and AWS's own variables. First time? `orgsync check`. See README.md.",
    )
    top.add_argument("--version", action="version", version=f"orgsync {version()}")
    top.add_argument("-v", "--verbose", action="store_true", help="show structured logs on stderr")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[..., int], help: str, json: bool = False) -> Any:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        p.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show structured logs on stderr",
        )
        if json:
            p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        return p

    for group in GROUPS:
        group.add(command)
    return top


def configure_logging(settings: Settings, args: argparse.Namespace) -> None:
    from orgsync.services.logs import configure

    configure(settings.log_level, settings.log_format)
    if args.verbose:
        return
    if args.command in LOGGING_COMMANDS:
        logging.getLogger("pika").setLevel(logging.CRITICAL + 1)
    else:
        logging.disable(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings: Settings | None = None
    try:
        settings = Settings.from_env()
        configure_logging(settings, args)
        ctx = Context(settings)
        try:
            return int(args.func(ctx, args))
        finally:
            ctx.house.close()
    except (ServiceUnavailable, UserError, SettingsError, CredentialError) as error:
        print(f"orgsync: {error}", file=sys.stderr)
        return 2
    except psycopg.errors.UndefinedTable:
        assert settings is not None
        from orgsync.services.adapters.db import describe

        print(
            f"orgsync: the database {describe(settings.database_url)} has no orgsync tables"
            " yet; run `orgsync migrate`",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
