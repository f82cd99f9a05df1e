"""The command line a new user meets: help on every registration flag, required ones marked,
durations written one way everywhere, the external id kept out of shell history, --version."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import pytest

from orgsync.pipelines.request_rules import check_request
from orgsync.services.commands import cli, context, organizations
from orgsync.services.errors import UserError

REQUIRED = ("--nickname", "--org-role-arn", "--member-role-name")
DEFAULTED = (
    "--org-session-name",
    "--org-session-duration",
    "--member-session-name",
    "--member-session-duration",
)
DURATION_FLAGS = {
    "register": (
        "--org-session-duration",
        "--member-session-duration",
        "--timeout",
        "--sync-timeout",
    ),
    "update": ("--org-session-duration", "--member-session-duration", "--timeout"),
    "sync": ("--timeout",),
    "queues": ("--interval",),
    "demo": ("--timeout",),
}


def subparser(name: str) -> argparse.ArgumentParser:
    top = cli.parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["register", "update"])
def test_every_registration_flag_has_help_text(command: str) -> None:
    for action in subparser(command)._actions:
        if action.option_strings:
            assert action.help, f"{command} {action.option_strings} has no help"


def test_register_marks_its_required_flags_and_update_does_not() -> None:
    for command, marked in (("register", True), ("update", False)):
        helps = {
            a.option_strings[0]: a.help for a in subparser(command)._actions if a.option_strings
        }
        for flag in REQUIRED:
            assert str(helps[flag]).startswith("(required)") is marked, (command, flag)
        for flag in DEFAULTED:
            assert "(default " in str(helps[flag]) and "(required)" not in str(helps[flag])
        assert not str(helps["--external-id"]).startswith("(required)")


def test_register_needs_only_the_nickname_and_the_two_roles() -> None:
    argv = ["register", "--nickname", "prod", "--member-role-name", "orgsync-member"]
    args = cli.parser().parse_args([*argv, "--org-role-arn", "arn:aws:iam::123456789012:role/r"])
    request, problems = check_request(organizations.request_from(args, None))
    assert problems == [] and request is not None and request.credentials is not None
    assert request.credentials.org_session_name == "orgsync"
    assert request.credentials.member_session_duration == 3600


@pytest.mark.parametrize(
    ("command", "flag"), [(c, f) for c, flags in DURATION_FLAGS.items() for f in flags]
)
@pytest.mark.parametrize(("text", "seconds"), [("900", 900), ("15m", 900), ("1h", 3600)])
def test_durations_accept_seconds_minutes_and_hours_everywhere(
    command: str, flag: str, text: str, seconds: int
) -> None:
    argv = [command, "o-1", flag, text] if command in ("sync", "update") else [command, flag, text]
    args = cli.parser().parse_args(argv)
    assert getattr(args, flag.lstrip("-").replace("-", "_")) == seconds


def test_a_bad_duration_is_refused_in_one_line_that_shows_the_forms(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit:
        cli.parser().parse_args(["register", "--org-session-duration", "an hour"])
    assert exit.value.code == 2
    assert "expected a positive duration of at most 7 days (604800 s), such as 300, 90s" in (
        capsys.readouterr().err
    )


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"orgsync {cli.version()}"


class Terminal(io.StringIO):
    def __init__(self, text: str = "", tty: bool = True) -> None:
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def parsed(*argv: str) -> argparse.Namespace:
    return cli.parser().parse_args(["register", *argv])


def test_the_external_id_is_read_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "external-id"
    path.write_text("s3cret-Id\n")
    assert context.external_id(parsed("--external-id-file", str(path))) == "s3cret-Id"


def test_the_external_id_is_read_from_standard_input() -> None:
    args = parsed("--external-id", "-")
    assert context.external_id(args, Terminal("from-stdin\n", tty=False)) == "from-stdin"


def test_the_external_id_is_asked_for_without_echo_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or "typed-id")
    args = parsed("--external-id", "--nickname", "acme")
    assert context.external_id(args, Terminal()) == "typed-id"
    assert prompts == ["external id: "] and args.nickname == "acme"


def test_asking_for_the_external_id_without_a_terminal_says_what_to_do_instead() -> None:
    with pytest.raises(UserError, match=r"--external-id - .* or --external-id-file PATH"):
        context.external_id(parsed("--external-id"), Terminal(tty=False))


def test_a_missing_external_id_file_is_one_line_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(UserError, match=f"--external-id-file {missing}: No such file"):
        context.external_id(parsed("--external-id-file", str(missing)))


def test_an_external_id_flag_and_file_together_are_refused() -> None:
    with pytest.raises(SystemExit):
        parsed("--external-id", "a", "--external-id-file", "b")


def test_no_external_id_given_means_none() -> None:
    assert context.external_id(parsed("--nickname", "acme")) is None


def test_sync_interval_takes_a_duration_or_default() -> None:
    assert cli.parser().parse_args(["register", "--sync-interval", "6h"]).sync_interval == 21600
    assert cli.parser().parse_args(["register", "--sync-interval", "default"]).sync_interval == 0


def test_account_add_takes_a_duration_and_the_external_id_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "id"
    path.write_text("acct-id")
    args = cli.parser().parse_args(
        ["account", "add", "123456789012", "--role-arn", "arn:aws:iam::123456789012:role/r",
         "--session-duration", "15m", "--external-id-file", str(path)]
    )  # fmt: skip
    assert args.session_duration == 900
    assert context.external_id(args) == "acct-id"


def test_the_demo_without_the_simulated_aws_says_what_to_install_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "moto", None)  # as in a plain `pip install orgsync`
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "orgsync: the demo needs the simulated AWS (moto is not installed): pip install"
        " 'orgsync[sim]', or run `make demo` in a checkout"
    ]
