"""What every command handler gets: the settings and the house, and the few helpers all of them
share."""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Callable
from typing import Any

from orgsync.pipelines import access, audit, numbers
from orgsync.pipelines.orgs import resolve_org_id
from orgsync.services.bootstrap import House
from orgsync.services.errors import UserError
from orgsync.services.settings import Settings, SettingsError, parse_duration

# command(name, handler, help, json=False) -> the sub-command's parser (see commands/cli.py)
Command = Callable[..., argparse.ArgumentParser]


class Context:
    """A command's settings and its house (services/bootstrap.py), which `cli.main` closes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.house = House(settings, pool_size=2)

    def connect(self) -> Any:
        return self.house.connect()

    @property
    def by(self) -> audit.By:
        """Who runs this command, for the audit trail: `cli:<os user>` (admin on all)."""
        return audit.By(access.administrator("cli", os_user()), "cli")

    def org_id(self, conn: Any, ref: str) -> str:
        org_id = resolve_org_id(conn, ref)
        if org_id is None:
            raise UserError(
                f"no organization {ref!r} (give its id or nickname; see `orgsync orgs`)"
            )
        return org_id


def os_user() -> str:
    """The login name, else the numeric uid (a container's user may have no name)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return str(os.getuid())


def duration(flag: str, *, whole: bool = True) -> Callable[[str], Any]:
    """An argparse type: seconds from 900, 900s, 15m or 1h (whole ones unless `whole` is
    false), named after its flag."""

    def parse(text: str) -> float:
        try:
            seconds = parse_duration(text, flag)
        except SettingsError as error:
            raise argparse.ArgumentTypeError(str(error)) from error
        return round(seconds) if whole else seconds

    parse.__name__ = "duration"  # argparse names the type in its error line
    return parse


def whole(flag: str, least: int, most: int) -> Callable[[str], int]:
    """An argparse type: a whole number of ASCII digits from `least` to `most`, named after its
    flag (argparse's own `int` takes "-5" and a thousand digits, which no count or port is)."""

    def parse(text: str) -> int:
        value = numbers.whole(text, least, most)
        if value is None:
            shown = text if len(text) <= 40 else f"{text[:40]}..."
            raise argparse.ArgumentTypeError(
                f"{flag}={shown!r}: expected a whole number from {least} to {most}"
            )
        return value

    parse.__name__ = "whole number"
    return parse


PROMPT = object()  # `--external-id` given without a value: ask on the terminal


def add_external_id(p: argparse.ArgumentParser) -> None:
    """`--external-id VALUE | - | (nothing: a prompt)` and `--external-id-file PATH`."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--external-id",
        nargs="?",
        const=PROMPT,
        metavar="VALUE",
        help="the sts:ExternalId the role's trust policy requires (optional); `-` reads it from"
        " standard input, no value asks for it without echo on a terminal (keeps it out of"
        " shell history)",
    )
    group.add_argument(
        "--external-id-file", metavar="PATH", help="read the external id from this file"
    )


def external_id(args: argparse.Namespace, stdin: Any = None) -> str | None:
    """The external id from a flag, a file, standard input or a prompt; None when not given."""
    import getpass
    import sys

    stdin = stdin or sys.stdin
    if args.external_id_file:
        try:
            with open(args.external_id_file, encoding="utf-8") as file:
                return _one_line(file.read(), f"--external-id-file {args.external_id_file}")
        except OSError as error:
            raise UserError(
                f"--external-id-file {args.external_id_file}: {error.strerror}"
            ) from error
    if args.external_id is PROMPT:
        if not stdin.isatty():
            raise UserError(
                "--external-id without a value asks on a terminal; give --external-id -"
                " (standard input) or --external-id-file PATH instead"
            )
        return _one_line(getpass.getpass("external id: "), "the external id")
    if args.external_id == "-":
        return _one_line(stdin.read(), "--external-id - (standard input)")
    return args.external_id  # type: ignore[no-any-return]


def _one_line(text: str, source: str) -> str:
    value = text.strip()
    if not value or "\n" in value:
        raise UserError(f"{source}: expected the external id on one line")
    return value
