"""`aws_rates`, an organization's override of ORGSYNC_AWS_RATES: its rule."""

from __future__ import annotations

import pytest

from orgsync.pipelines.request_rules import (
    MAX_AWS_RATE,
    MAX_AWS_RATE_ENTRIES,
    Filters,
    check_request,
    operation_names,
)

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
        pytest.param({"ListAccountsForParent": limits(0.001, 0.001)}, id="floor-equals-ceiling"),
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
            {"*": limits(0, 2)}, "floor must be above 0 and at most 1000 calls/s, got 0", id="zero"
        ),
        pytest.param({"*": limits(-1, 2)}, "got -1", id="negative"),
        pytest.param({"*": limits(1, 1001)}, "ceiling must be above 0 and at most 1000", id="1001"),
        pytest.param({"*": limits(1, float("inf"))}, "got inf", id="infinite"),
        pytest.param({"*": limits(float("nan"), 2)}, "got nan", id="nan"),
        pytest.param({"*": limits(1, 10**400)}, "ceiling must be above 0", id="a-huge-integer"),
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


def test_every_bad_entry_is_reported_at_once() -> None:
    value = {"ListParent": limits(1, 2), "*": limits(5, 1), "ListRoots": limits(1, 2)}

    found = problems_of(value)

    assert len(found) == 2
    assert found[0].startswith("'ListParent': ") and found[1].startswith("'*': floor 5")


def test_the_operation_names_come_from_botocore_once() -> None:
    assert {"ListParents", "ListRoots", "DescribeOrganization"} <= operation_names("organizations")
    assert operation_names("organizations") is operation_names("organizations")
    assert MAX_AWS_RATE_ENTRIES == 50
