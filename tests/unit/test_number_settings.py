"""Numbers in the environment and on the command line: finite, within bounds, refused in one
line naming the variable or flag and the bound (never a traceback, never infinity)."""

from __future__ import annotations

import pytest

from orgsync.services.commands import cli
from orgsync.services.errors import UserError
from orgsync.services.settings import MAX_DURATION_S, Settings, SettingsError, parse_duration
from orgsync.services.web import auth

HUGE = "9" * 400  # float() reads it as infinity; int() of more than 4,300 digits raises


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("ORGSYNC_SYNC_INTERVAL", "nan", "expected a positive duration of at most 7 days"),
        ("ORGSYNC_SYNC_INTERVAL", "inf", "expected a positive duration"),
        ("ORGSYNC_SYNC_INTERVAL", HUGE, "expected a positive duration of at most 7 days"),
        ("ORGSYNC_STUCK_AFTER", "1e999", "expected a positive duration"),
        ("ORGSYNC_STUCK_AFTER", "8d", "expected a positive duration"),
        ("ORGSYNC_STUCK_AFTER", "169h", "at most 7 days (604800 s)"),
        ("ORGSYNC_AWS_CONCURRENCY", "\u00b2", "expected a whole number from 1 to 256"),
        ("ORGSYNC_AWS_CONCURRENCY", "9" * 5000, "expected a whole number from 1 to 256"),
        ("ORGSYNC_REMOVAL_MIN", "-1", "expected a whole number from 0 to 1000000"),
        ("ORGSYNC_REMOVAL_LIMIT", "nan%", "expected a percentage from 0 to 100"),
        ("ORGSYNC_REMOVAL_LIMIT", "\u0665\u0660", "expected a percentage from 0 to 100"),
        ("ORGSYNC_EXPORTER_PORT", "\u00b9", "expected a TCP port number"),
        ("ORGSYNC_WEB_PORT", HUGE, "expected a TCP port number"),
        ("ORGSYNC_AWS_RATES", "*=nan:inf", "expected API=FLOOR:CEILING"),
        ("ORGSYNC_AWS_RATES", f"*=1:{HUGE}", "CEILING must be from 0.5 to 1000 calls/s"),
    ],
)
def test_a_number_setting_that_is_not_a_finite_number_within_bounds_is_refused(
    name: str, value: str, says: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({name: value})
    message = str(refused.value)
    assert message.startswith(f"{name}") and says in message
    assert len(message) < 400  # one line, whatever its value


def test_durations_are_bounded_at_seven_days() -> None:
    assert parse_duration("168h", "X") == MAX_DURATION_S
    assert parse_duration("0.5s", "X") == 0.5
    with pytest.raises(SettingsError):
        parse_duration("604801", "X")


@pytest.mark.parametrize(
    "argv",
    [
        ["worker", "--threads", "0"],
        ["worker", "--threads", "-1"],
        ["worker", "--threads", "100000"],
        ["worker", "--processes", HUGE],
        ["demo", "--accounts", "1e9"],
        ["web", "--port", "65536"],
        ["exporter", "--port", "\u00b2"],
        ["registrations", "--limit", "-5"],
        ["registrations", "--limit", "99999999999999999999"],
        ["queues", "--watch", "--interval", "nan"],
        ["queues", "--watch", "--interval", HUGE],
        ["register", "--timeout", "inf"],
        ["update", "o-1", "--sync-interval", HUGE],
    ],
)
def test_a_number_flag_outside_its_bounds_is_an_argparse_error_naming_it(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        cli.parser().parse_args(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    flag = argv[-2]
    assert f"argument {flag}" in err and ("whole number from" in err or "duration" in err)


def test_number_flags_within_their_bounds_are_read() -> None:
    args = cli.parser().parse_args(["worker", "--processes", "2", "--threads", "256"])
    assert (args.processes, args.threads) == (2, 256)
    assert cli.parser().parse_args(["registrations", "--limit", "10000"]).limit == 10_000


@pytest.mark.parametrize(
    ("costs", "why"),
    [
        ("3$8$1", "n not a power of 2"),
        (f"{2**40}$8$1", "more memory than scrypt allows"),
        ("16384$\u00b2$1", "not ASCII digits"),
        ("16384$8$-1", "a sign"),
        (f"16384${HUGE}$1", "past any cost"),
    ],
)
def test_a_password_hash_whose_costs_scrypt_refuses_is_refused_at_start_not_at_sign_in(
    costs: str, why: str
) -> None:
    good = auth.hash_password("x")
    assert auth.parse_hash(good)[:3] == (auth.SCRYPT_N, auth.SCRYPT_R, auth.SCRYPT_P)
    bad = good.replace(f"${auth.SCRYPT_N}${auth.SCRYPT_R}${auth.SCRYPT_P}$", f"${costs}$")
    with pytest.raises(UserError, match="ORGSYNC_WEB_PASSWORD_HASH is not scrypt"):
        auth.parse_hash(bad)
