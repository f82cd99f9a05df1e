"""`aws_rates`, an organization's override of ORGSYNC_AWS_RATES: its rule, the `--aws-rates`
flag and the console's field, both in the setting's `API=FLOOR:CEILING,...` syntax."""

from __future__ import annotations

from typing import Any

import pytest

from orgsync.pipelines.request_rules import (
    MAX_AWS_RATE,
    MAX_AWS_RATE_ENTRIES,
    MIN_AWS_RATE,
    Filters,
    check_request,
    operation_names,
)
from orgsync.services.commands import cli
from orgsync.services.commands.organizations import request_from
from orgsync.services.settings import (
    DEFAULT_AWS_RATES,
    Settings,
    SettingsError,
    parse_rate_override,
    parse_rate_spec,
    parse_rates,
    rate_override_text,
)
from orgsync.services.web import forms

ORG_ID = "o-abcdefghij"
OVERRIDE = {"*": {"floor": 1, "ceiling": 20}, "ListParents": {"floor": 0.5, "ceiling": 5}}


def problems_of(value: object) -> list[str]:
    """The one problem `aws_rates: value` makes in an update, split into its messages."""
    request, problems = check_request({"request_id": "r", "org_id": ORG_ID, "aws_rates": value})
    assert request is None
    assert [p.field for p in problems] == ["aws_rates"]
    return problems[0].message.split("; ")


def limits(floor: object, ceiling: object) -> dict[str, object]:
    return {"floor": floor, "ceiling": ceiling}


# --- the rule ---


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(OVERRIDE, id="star-and-one-api"),
        pytest.param(None, id="null-no-override"),
        pytest.param({"*": limits(MAX_AWS_RATE, MAX_AWS_RATE)}, id="at-the-ceiling-bound"),
        pytest.param({"*": limits(MIN_AWS_RATE, MIN_AWS_RATE)}, id="at-the-floor-bound"),
        pytest.param({"ListAccountsForParent": limits(3, 3)}, id="floor-equals-ceiling"),
        pytest.param(
            {name: limits(1, 2) for name in sorted(operation_names("organizations"))[:50]},
            id="fifty-entries",
        ),
    ],
)
def test_an_override_or_null_is_accepted_and_can_change_alone(value: object) -> None:
    request, problems = check_request({"request_id": "r", "org_id": ORG_ID, "aws_rates": value})

    assert problems == [] and request is not None
    assert request.filter_changes == {"aws_rates": value}
    assert request.filters(Filters(auto_badge=True)) == Filters(auto_badge=True, aws_rates=value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param({}, "must name at least one API: use null for no override", id="empty"),
        pytest.param("*=1:20", "must be a JSON object", id="the-flag-syntax-as-a-string"),
        pytest.param([OVERRIDE], "got array", id="array"),
        pytest.param(
            {f"Api{n}": limits(1, 2) for n in range(51)},
            "must hold at most 50 entries (maxProperties), got 51",
            id="51-entries",
        ),
        pytest.param(
            {"ListParent": limits(1, 2)},
            "'ListParent': not an AWS Organizations operation (did you mean 'ListParents'?)",
            id="typo",
        ),
        pytest.param(
            {"listparents": limits(1, 2)}, "(did you mean 'ListParents'?)", id="lower-case"
        ),
        pytest.param(
            {"GetObject": limits(1, 2)},
            "'GetObject': not an AWS Organizations operation",
            id="another-service",
        ),
        pytest.param(
            {"AssumeRole": limits(1, 100)},
            "'AssumeRole': an STS call, counted against orgsync's own account, not the"
            " organization's: set it in ORGSYNC_AWS_RATES",
            id="assume-role",
        ),
        pytest.param({"GetCallerIdentity": limits(1, 2)}, "an STS call", id="any-sts-call"),
        pytest.param(
            {"*": 20},
            '\'*\': must be {"floor": number, "ceiling": number}, got integer',
            id="a-bare-number",
        ),
        pytest.param({"*": {"ceiling": 20}}, "'*': floor is required", id="no-floor"),
        pytest.param(
            {"*": {"floor": 1, "ceiling": 2, "burst": 3}},
            "'*': unknown 'burst' (only floor and ceiling)",
            id="an-unknown-key",
        ),
        pytest.param(
            {"*": limits("1", 2)},
            "'*': floor must be a number (calls/s), got string",
            id="a-string",
        ),
        pytest.param(
            {"*": limits(True, 2)}, "floor must be a number (calls/s), got boolean", id="a-boolean"
        ),
        pytest.param(
            {"*": limits(0, 2)}, "floor must be from 0.5 to 1000 calls/s, got 0", id="zero"
        ),
        pytest.param(
            {"*": limits(0.001, 0.001)},
            "'*': floor must be from 0.5 to 1000 calls/s, got 0.001",
            id="below-the-minimum",
        ),
        pytest.param({"*": limits(1e-300, 2)}, "floor must be from 0.5", id="tiny"),
        pytest.param({"*": limits(0.49, 2)}, "got 0.49", id="just-below-the-minimum"),
        pytest.param({"*": limits(-1, 2)}, "got -1", id="negative"),
        pytest.param({"*": limits(1, 1001)}, "ceiling must be from 0.5 to 1000", id="1001"),
        pytest.param({"*": limits(1, float("inf"))}, "got inf", id="infinite"),
        pytest.param({"*": limits(float("nan"), 2)}, "got nan", id="nan"),
        pytest.param({"*": limits(1, 10**400)}, "ceiling must be from 0.5", id="a-huge-integer"),
        pytest.param(
            {"ListRoots": limits(5, 2)},
            "'ListRoots': floor 5 must not exceed ceiling 2",
            id="floor-above-ceiling",
        ),
    ],
)
def test_a_bad_override_is_one_problem_naming_the_field_and_what_is_wrong(
    value: object, message: str
) -> None:
    assert any(message in text for text in problems_of(value)), problems_of(value)
    assert "; ".join(problems_of(value)).count(message) == 1  # said once


def test_every_bad_entry_is_reported_at_once() -> None:
    value = {"ListParent": limits(1, 2), "*": limits(5, 1), "ListRoots": limits(1, 2)}

    found = problems_of(value)

    assert len(found) == 2
    assert found[0].startswith("'ListParent': ") and found[1].startswith("'*': floor 5")


def test_the_operation_names_come_from_botocore_once() -> None:
    assert {"ListParents", "ListRoots", "DescribeOrganization"} <= operation_names("organizations")
    assert operation_names("organizations") is operation_names("organizations")
    assert MAX_AWS_RATE_ENTRIES == 50


# --- the setting's syntax, shared ---


def test_the_setting_still_merges_over_its_defaults_and_the_override_does_not() -> None:
    assert parse_rates("ListParents=1:5", "X") == {**DEFAULT_AWS_RATES, "ListParents": (1.0, 5.0)}
    assert parse_rate_override("ListParents=1:5", "X") == {
        "ListParents": {"floor": 1.0, "ceiling": 5.0}
    }


@pytest.mark.parametrize("text", ["none", "default", "None", " DEFAULT ", ""])
def test_none_default_or_blank_is_no_override(text: str) -> None:
    assert parse_rate_override(text, "X") is None


@pytest.mark.parametrize(
    "text", ["*=1", "List Parents=1:2", "*=1:2;x=1:2", ",", "*=nan:1", "*=inf:inf", "*=1e3:1e3"]
)
def test_a_malformed_spec_is_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(SettingsError, match=r"expected (at least one )?API=FLOOR:CEILING"):
        parse_rate_override(text, "X")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("*=0.001:0.001", "X: '*=0.001:0.001': FLOOR must be from 0.5 to 1000 calls/s, got 0.001"),
        ("*=0:5", "FLOOR must be from 0.5 to 1000 calls/s, got 0"),
        ("*=0.49:5", "FLOOR must be from 0.5 to 1000 calls/s, got 0.49"),
        ("*=1:1000.5", "CEILING must be from 0.5 to 1000 calls/s, got 1000.5"),
        ("*=1:" + "9" * 400, f"CEILING must be from 0.5 to 1000 calls/s, got {'9' * 20}..."),
        ("*=2:1", "X: '*=2:1': FLOOR must not exceed CEILING"),
    ],
)
def test_a_rate_outside_the_bounds_is_refused_naming_them(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        parse_rate_override(text, "X")
    assert message in str(refused.value)
    with pytest.raises(SettingsError, match=r"ORGSYNC_AWS_RATES: .*(FLOOR|CEILING)"):
        parse_rates(text, "ORGSYNC_AWS_RATES")


def test_the_bounds_themselves_are_accepted() -> None:
    assert parse_rate_spec("*=0.5:1000", "X") == {"*": (MIN_AWS_RATE, MAX_AWS_RATE)}
    assert (MIN_AWS_RATE, MAX_AWS_RATE) == (0.5, 1000.0)


@pytest.mark.parametrize(
    ("override", "text"),
    [
        (OVERRIDE, "*=1:20,ListParents=0.5:5"),
        ({"ListRoots": {"floor": 0.5, "ceiling": 12.3456789}}, "ListRoots=0.5:12.3456789"),
        (None, ""),
    ],
)
def test_an_override_is_written_in_the_syntax_it_is_read_back_from(
    override: dict[str, Any] | None, text: str
) -> None:
    assert rate_override_text(override) == text
    assert parse_rate_override(text, "X") == override


def test_an_override_stored_before_the_bounds_is_still_shown_in_plain_decimals() -> None:
    stored = {"ListRoots": {"floor": 0.00001, "ceiling": 0.001}}
    assert rate_override_text(stored) == "ListRoots=0.00001:0.001"


# --- the flag ---


def test_the_flag_sets_the_override_and_none_or_default_clears_it() -> None:
    args = cli.parser().parse_args(["update", "prod", "--aws-rates", "*=1:20,ListParents=0.5:5"])
    assert request_from(args, ORG_ID)["aws_rates"] == OVERRIDE
    for clear in ("none", "default"):
        args = cli.parser().parse_args(["update", "prod", "--aws-rates", clear])
        assert request_from(args, ORG_ID)["aws_rates"] is None
    args = cli.parser().parse_args(["update", "prod"])
    assert "aws_rates" not in request_from(args, ORG_ID)


def test_register_takes_the_flag_too() -> None:
    args = cli.parser().parse_args(["register", "--aws-rates", "ListRoots=1:2"])
    assert request_from(args, None)["aws_rates"] == {"ListRoots": {"floor": 1, "ceiling": 2}}


def test_a_malformed_flag_is_an_argparse_error_that_shows_the_form(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit:
        cli.parser().parse_args(["update", "prod", "--aws-rates", "ListParents=5"])

    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "argument --aws-rates" in err and "'ListParents=5'" in err
    assert "expected API=FLOOR:CEILING" in err and "or none for no override" in err


# --- the console's field ---


def test_the_form_sends_the_override_and_blank_clears_it_only_on_an_edit() -> None:
    assert forms.request_from({"aws_rates": "*=1:20"}, None)["aws_rates"] == {
        "*": {"floor": 1, "ceiling": 20}
    }
    assert "aws_rates" not in forms.request_from({"aws_rates": " "}, None)
    assert forms.request_from({"aws_rates": ""}, ORG_ID)["aws_rates"] is None


def test_a_malformed_form_value_names_its_field() -> None:
    with pytest.raises(forms.FieldError, match="AWS rate override: '\\*=1'") as error:
        forms.request_from({"aws_rates": "*=1"}, ORG_ID)
    assert error.value.field == "aws_rates"


# --- the bounds, wherever a rate is given ---


def test_the_flag_refuses_a_rate_below_the_minimum_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit:
        cli.parser().parse_args(["update", "prod", "--aws-rates", "*=0.001:0.001"])

    assert exit.value.code == 2
    assert "FLOOR must be from 0.5 to 1000 calls/s, got 0.001" in capsys.readouterr().err


def test_the_form_refuses_a_rate_below_the_minimum_beside_its_field() -> None:
    with pytest.raises(forms.FieldError, match=r"FLOOR must be from 0\.5") as error:
        forms.request_from({"aws_rates": "*=0.0001:1"}, ORG_ID)
    assert error.value.field == "aws_rates"


def test_the_setting_refuses_a_rate_above_the_maximum() -> None:
    with pytest.raises(SettingsError, match=r"ORGSYNC_AWS_RATES: .*CEILING must be from 0\.5"):
        Settings.from_env({"ORGSYNC_AWS_RATES": "AssumeRole=1:5000"})


@pytest.mark.parametrize(
    ("text", "likely"),
    [("ListTagForResource=1:5", "ListTagsForResource"), ("Assumerole=1:5", "AssumeRole")],
)
def test_the_setting_refuses_a_misspelt_api_naming_the_likely_one(text: str, likely: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"ORGSYNC_AWS_RATES": text})
    message = str(refused.value)
    assert message.startswith("ORGSYNC_AWS_RATES: ")
    assert "is not an AWS Organizations or STS operation" in message and likely in message


def test_the_setting_takes_organizations_and_sts_calls_and_the_star() -> None:
    rates = Settings.from_env({"ORGSYNC_AWS_RATES": "*=1:20,ListParents=1:5,AssumeRole=2:80"})
    assert rates.aws_rates["AssumeRole"] == (2.0, 80.0) and rates.aws_rates["*"] == (1.0, 20.0)
