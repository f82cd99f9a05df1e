"""The formatting rules of a registration request: valid and invalid values for every field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orgsync.pipelines import schemas
from orgsync.pipelines.request_rules import (
    ALL_FIELDS,
    CREDENTIAL_FIELDS,
    FILTER_FIELDS,
    PARTITIONS,
    REQUIRED_CREDENTIAL_FIELDS,
    Credentials,
    Filters,
    Problem,
    RegistrationRequest,
    check_request,
    field_problems,
    redacted,
)

ACCOUNT = "123456789012"
ARN = f"arn:aws:iam::{ACCOUNT}:role/InsightCloudSec-Org-ListDesc-Role"
SEED_TYPO_ARN = f"arn:aw:iam::{ACCOUNT}:role/InsightCloudSec-Org-ListDesc-Role"
ARABIC_INDIC_ACCOUNT = "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662"
ORG_ID = "o-abcdefghij"

NEW: dict[str, Any] = {
    "request_id": "req-1",
    "nickname": "Production",
    "org_role_arn": ARN,
    "org_session_name": "orgsync-org",
    "org_session_duration": 3600,
    "member_role_name": "InsightCloudSec-Org-Member-Role",
    "member_session_name": "orgsync-member",
    "member_session_duration": 3600,
}
CREDENTIALS = {name: NEW[name] for name in CREDENTIAL_FIELDS if name != "external_id"}
ROLES = {name: NEW[name] for name in REQUIRED_CREDENTIAL_FIELDS}
UPDATE: dict[str, Any] = {"request_id": "req-2", "org_id": ORG_ID}


def with_fields(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def without(base: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: value for name, value in base.items() if name not in names}


def accepted(raw: object) -> RegistrationRequest:
    request, problems = check_request(raw)
    assert problems == []
    assert request is not None
    return request


def rejected(raw: object) -> list[Problem]:
    request, problems = check_request(raw)
    assert request is None
    assert problems
    return problems


def arn(resource: str = "role/Reader", *, partition: str = "aws", account: str = ACCOUNT) -> str:
    return f"arn:{partition}:iam::{account}:{resource}"


def for_fields(fields: tuple[str, ...], cases: list[tuple[Any, ...]]) -> list[Any]:
    """The same cases for several fields that share a rule, each id prefixed by its field."""
    return [
        pytest.param(name, *case[1:], id=f"{name}-{case[0]}") for name in fields for case in cases
    ]


SESSION_NAMES = ("org_session_name", "member_session_name")
DURATIONS = ("org_session_duration", "member_session_duration")
BOOLEANS = ("auto_remove_suspended", "auto_badge")

# (field, value): each makes NEW a valid request.
VALID = [
    pytest.param("request_id", "a", id="request_id-one-char"),
    pytest.param("request_id", "x" * 128, id="request_id-128-chars"),
    pytest.param("request_id", "cli:2024-01-01T00.00.00-7f3a", id="request_id-all-punctuation"),
    pytest.param("nickname", "P", id="nickname-one-char"),
    pytest.param("nickname", "x" * 64, id="nickname-64-chars"),
    pytest.param("nickname", "Équipe Sécurité / Prod #1", id="nickname-unicode-and-spaces"),
    pytest.param("org_role_arn", arn(partition="aws-cn"), id="org_role_arn-aws-cn"),
    pytest.param("org_role_arn", arn(partition="aws-us-gov"), id="org_role_arn-aws-us-gov"),
    pytest.param("org_role_arn", arn("role/service-role/org/Reader"), id="org_role_arn-with-path"),
    pytest.param("org_role_arn", arn("role/" + "R" * 64), id="org_role_arn-64-char-name"),
    pytest.param("org_role_arn", arn("role/a_b+c=d,e.f@g-h"), id="org_role_arn-name-punctuation"),
    *for_fields(
        SESSION_NAMES,
        [("two-chars", "ab"), ("64-chars", "s" * 64), ("punctuation", "ops+org=1,a.b@c_d-e")],
    ),
    *for_fields(DURATIONS, [("900", 900), ("43200", 43200), ("3600", 3600)]),
    pytest.param("member_role_name", "R", id="member_role_name-one-char"),
    pytest.param("member_role_name", "team/Reader", id="member_role_name-relative-path"),
    pytest.param("member_role_name", "/team/sub/Reader", id="member_role_name-absolute-path"),
    pytest.param("member_role_name", "p!~:*/Reader", id="member_role_name-path-punctuation"),
    pytest.param("member_role_name", "p" * 510 + "/Reader", id="member_role_name-512-char-path"),
    pytest.param("external_id", "ab", id="external_id-two-chars"),
    pytest.param("external_id", "x" * 1224, id="external_id-1224-chars"),
    pytest.param("external_id", "urn:tenant/42=a,b.c@d_e+f-g", id="external_id-punctuation"),
    pytest.param("exclude_prefixes", [], id="exclude_prefixes-empty"),
    pytest.param("exclude_prefixes", ["Sandbox-", "test ", "Équipe"], id="exclude_prefixes-some"),
    pytest.param("exclude_prefixes", ["x" * 128], id="exclude_prefixes-128-chars"),
    pytest.param(
        "exclude_prefixes", [f"p{i}-" for i in range(100)], id="exclude_prefixes-at-the-bound"
    ),
    *for_fields(BOOLEANS, [("true", True), ("false", False)]),
    pytest.param("limit_ou_ids", [], id="limit_ou_ids-empty"),
    pytest.param("limit_ou_ids", ["ou-ab12-abcdefgh"], id="limit_ou_ids-ou"),
    pytest.param("limit_ou_ids", ["r-ab12"], id="limit_ou_ids-root"),
    pytest.param(
        "limit_ou_ids",
        ["ou-" + "a" * 32 + "-" + "9" * 32, "ou-zz99-12345678"],
        id="limit_ou_ids-longest-and-shortest",
    ),
    pytest.param("org_id", ORG_ID, id="org_id-shortest"),
    pytest.param("org_id", "o-" + "a1" * 16, id="org_id-longest"),
    pytest.param("sync_interval_seconds", 60, id="sync_interval_seconds-shortest"),
    pytest.param("sync_interval_seconds", 604800, id="sync_interval_seconds-a-week"),
    pytest.param("sync_interval_seconds", None, id="sync_interval_seconds-null-is-the-default"),
    pytest.param("aws_rates", None, id="aws_rates-null-is-the-setting"),
    pytest.param(
        "aws_rates",
        {"*": {"floor": 1, "ceiling": 20}, "ListParents": {"floor": 0.5, "ceiling": 5}},
        id="aws_rates-star-and-one-api",
    ),
]

# (field, value, part of the message): each makes NEW invalid with exactly one problem.
INVALID = [
    # issue 18, finding 10: ~16,000 prefixes fitted in one request, each tried on every account
    pytest.param(
        "exclude_prefixes",
        [f"p{i}-" for i in range(16_000)],
        "must hold at most 100 items (maxItems), got 16000",
        id="exclude_prefixes-16000",
    ),
    pytest.param(
        "exclude_prefixes",
        [f"p{i}-" for i in range(101)],
        "at most 100 items",
        id="exclude_prefixes-101",
    ),
    pytest.param(
        "limit_ou_ids",
        [f"ou-ab12-{i:08d}" for i in range(101)],
        "must hold at most 100 items (maxItems), got 101",
        id="limit_ou_ids-101",
    ),
    pytest.param(
        "request_id", "", "must be 1 to 128 characters long, got 0", id="request_id-empty"
    ),
    pytest.param("request_id", "x" * 129, "got 129", id="request_id-too-long"),
    pytest.param("request_id", "req 1", "found ' '", id="request_id-space"),
    pytest.param("request_id", "req/1", "found '/'", id="request_id-slash"),
    pytest.param("request_id", "req-1\n", "found '\\n'", id="request_id-trailing-newline"),
    pytest.param("request_id", 5, "must be a string, got integer", id="request_id-integer"),
    pytest.param("request_id", None, "must be a string, got null", id="request_id-null"),
    pytest.param("nickname", "", "must be 1 to 64 characters long, got 0", id="nickname-empty"),
    pytest.param("nickname", "x" * 65, "got 65", id="nickname-too-long"),
    pytest.param("nickname", " Prod", "whitespace", id="nickname-leading-space"),
    pytest.param("nickname", "Prod ", "whitespace", id="nickname-trailing-space"),
    pytest.param("nickname", "Prod\n", "printable characters, found '\\n'", id="nickname-newline"),
    pytest.param("nickname", "Pro\td", "found '\\t'", id="nickname-tab"),
    pytest.param("nickname", "Prod\u200b", "found '\\u200b'", id="nickname-zero-width-space"),
    pytest.param("nickname", "Prod\x7f", "found '\\x7f'", id="nickname-delete-char"),
    pytest.param("nickname", 5, "must be a string, got integer", id="nickname-integer"),
    pytest.param("nickname", ["Prod"], "must be a string, got array", id="nickname-array"),
    pytest.param(
        "org_role_arn",
        SEED_TYPO_ARN,
        "partition 'aw' is not one of aws, aws-cn, aws-us-gov",
        id="org_role_arn-seed-partition-typo",
    ),
    pytest.param("org_role_arn", arn(partition="aws-iso"), "'aws-iso'", id="org_role_arn-iso"),
    pytest.param(
        "org_role_arn",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/Reader/session",
        "service 'sts' is not 'iam'",
        id="org_role_arn-sts-service",
    ),
    pytest.param(
        "org_role_arn",
        f"arn:aws:iam:us-east-1:{ACCOUNT}:role/Reader",
        "region must be empty",
        id="org_role_arn-region",
    ),
    pytest.param(
        "org_role_arn",
        arn("InsightCloudSec-Org-ListDesc-Role"),
        "resource must start with 'role/'",
        id="org_role_arn-missing-role-prefix",
    ),
    pytest.param(
        "org_role_arn", arn("user/Bob"), "must start with 'role/'", id="org_role_arn-user"
    ),
    pytest.param(
        "org_role_arn",
        arn(account="12345678901"),
        "account id must be exactly 12 characters long, got 11",
        id="org_role_arn-account-11-digits",
    ),
    pytest.param(
        "org_role_arn",
        arn(account="1234567890123"),
        "got 13",
        id="org_role_arn-account-13-digits",
    ),
    pytest.param(
        "org_role_arn",
        arn(account=ARABIC_INDIC_ACCOUNT),
        "account id may only contain [0-9], found '\\u0661'",
        id="org_role_arn-account-arabic-indic-digits",
    ),
    pytest.param(
        "org_role_arn",
        arn(account="12345678901O"),
        "account id may only contain [0-9], found 'O'",
        id="org_role_arn-account-letter",
    ),
    pytest.param(
        "org_role_arn",
        ARN + "\n",
        "role name may only contain [A-Za-z0-9_+=,.@-], found '\\n'",
        id="org_role_arn-trailing-newline",
    ),
    pytest.param(
        "org_role_arn", arn("role/"), "role name must be 1 to 64", id="org_role_arn-no-name"
    ),
    pytest.param("org_role_arn", arn("role/" + "R" * 65), "got 65", id="org_role_arn-long-name"),
    pytest.param("org_role_arn", arn("role/Org Reader"), "found ' '", id="org_role_arn-space"),
    pytest.param(
        "org_role_arn", arn("role/a//Reader"), "empty segment", id="org_role_arn-empty-segment"
    ),
    pytest.param(
        "org_role_arn",
        arn("role/" + "p" * 600 + "/Reader"),
        "path must be at most 512 characters long, got 602",
        id="org_role_arn-path-too-long",
    ),
    pytest.param(
        "org_role_arn",
        arn("role/" + "p/" * 1010 + "Reader"),
        "must be at most 2048 characters long",
        id="org_role_arn-too-long",
    ),
    pytest.param(
        "org_role_arn",
        "InsightCloudSec-Org-ListDesc-Role",
        "must look like arn:<partition>:iam::<12-digit account id>:role/<name>",
        id="org_role_arn-bare-role-name",
    ),
    pytest.param(
        "org_role_arn", "ARN" + ARN[3:], "must start with 'arn:'", id="org_role_arn-uppercase"
    ),
    pytest.param("org_role_arn", 5, "must be a string, got integer", id="org_role_arn-integer"),
    *for_fields(
        SESSION_NAMES,
        [
            ("one-char", "a", "must be 2 to 64 characters long, got 1"),
            ("too-long", "s" * 65, "got 65"),
            ("trailing-newline", "orgsync\n", "found '\\n'"),
            ("space", "org sync", "found ' '"),
            ("unicode-letter", "sessión", "found '\\xf3'"),
            ("unicode-digits", "s\u0661\u0662", "found '\\u0661', '\\u0662'"),
            ("integer", 5, "must be a string, got integer"),
        ],
    ),
    *for_fields(
        DURATIONS,
        [
            ("899", 899, "must be 900 to 43200 seconds, got 899"),
            ("43201", 43201, "got 43201"),
            ("zero", 0, "got 0"),
            ("string", "3600", "must be an integer (seconds), got string"),
            ("bool", True, "got boolean"),
            ("float", 3600.0, "got number"),
            ("null", None, "got null"),
        ],
    ),
    pytest.param("member_role_name", "", "role name must be 1 to 64", id="member_role_name-empty"),
    pytest.param("member_role_name", "team/", "got 0", id="member_role_name-trailing-slash"),
    pytest.param("member_role_name", "a//Reader", "empty segment", id="member_role_name-double"),
    pytest.param("member_role_name", "//Reader", "empty segment", id="member_role_name-two-leads"),
    pytest.param("member_role_name", "R" * 65, "got 65", id="member_role_name-too-long"),
    pytest.param("member_role_name", "Org Reader", "found ' '", id="member_role_name-space"),
    pytest.param("member_role_name", "Röle", "found '\\xf6'", id="member_role_name-unicode"),
    pytest.param(
        "member_role_name",
        "my team/Reader",
        "path may only contain printable ASCII characters, found ' '",
        id="member_role_name-path-space",
    ),
    pytest.param(
        "member_role_name", "pâth/Reader", "found '\\xe2'", id="member_role_name-path-unicode"
    ),
    pytest.param(
        "member_role_name",
        "p" * 511 + "/Reader",
        "path must be at most 512 characters long, got 513",
        id="member_role_name-path-too-long",
    ),
    pytest.param("member_role_name", 5, "got integer", id="member_role_name-integer"),
    pytest.param("external_id", "a", "2 to 1224 characters long, got 1", id="external_id-1-char"),
    pytest.param("external_id", "x" * 1225, "got 1225", id="external_id-1225-chars"),
    pytest.param("external_id", "ext id", "found ' '", id="external_id-space"),
    pytest.param("external_id", "ext\n", "found '\\n'", id="external_id-trailing-newline"),
    pytest.param("external_id", "\u0661\u0662\u0663", "found '\\u0661'", id="external_id-unicode"),
    pytest.param("external_id", 5, "must be a string, got integer", id="external_id-integer"),
    pytest.param("external_id", None, "must be a string, got null", id="external_id-null"),
    pytest.param(
        "exclude_prefixes",
        "Sandbox-",
        "must be a JSON array, got string",
        id="exclude_prefixes-string",
    ),
    pytest.param(
        "exclude_prefixes",
        [""],
        "item 0: must be 1 to 128 characters long, got 0",
        id="exclude_prefixes-empty-item",
    ),
    pytest.param("exclude_prefixes", ["x" * 129], "got 129", id="exclude_prefixes-too-long"),
    pytest.param(
        "exclude_prefixes",
        ["ok", "bad\x00"],
        "item 1: must contain only printable characters, found '\\x00'",
        id="exclude_prefixes-control-char",
    ),
    pytest.param(
        "exclude_prefixes",
        ["Sandbox-", "Sandbox-"],
        "item 1 repeats item 0",
        id="exclude_prefixes-duplicate",
    ),
    pytest.param(
        "exclude_prefixes", [5], "item 0: must be a string, got integer", id="exclude_prefixes-int"
    ),
    pytest.param("exclude_prefixes", None, "got null", id="exclude_prefixes-null"),
    *for_fields(
        BOOLEANS,
        [
            ("string", "true", "must be true or false, got string"),
            ("one", 1, "got integer"),
            ("zero", 0, "got integer"),
            ("null", None, "got null"),
        ],
    ),
    pytest.param(
        "limit_ou_ids",
        "ou-ab12-abcdefgh",
        "must be a JSON array, got string",
        id="limit_ou_ids-string",
    ),
    pytest.param(
        "limit_ou_ids",
        ["ou-AB12-abcdefgh"],
        "item 0: 'ou-AB12-abcdefgh' is neither an OU id (ou-...) nor a root id (r-...)",
        id="limit_ou_ids-uppercase",
    ),
    pytest.param("limit_ou_ids", ["ou-ab1-abcdefgh"], "neither", id="limit_ou_ids-short-root"),
    pytest.param("limit_ou_ids", ["ou-ab12-abcdefg"], "neither", id="limit_ou_ids-short-suffix"),
    pytest.param("limit_ou_ids", [ORG_ID], "neither", id="limit_ou_ids-org-id"),
    pytest.param("limit_ou_ids", ["r-ab12\n"], "'r-ab12\\n'", id="limit_ou_ids-trailing-newline"),
    pytest.param("limit_ou_ids", ["r-ab12 "], "neither", id="limit_ou_ids-trailing-space"),
    pytest.param(
        "limit_ou_ids", ["r-ab12", "r-ab12"], "item 1 repeats item 0", id="limit_ou_ids-duplicate"
    ),
    pytest.param("limit_ou_ids", [5], "item 0: must be a string", id="limit_ou_ids-integer"),
    pytest.param(
        "org_id",
        "o-short",
        "'o-short' is not an organization id (o- and 10 to 32 of [a-z0-9])",
        id="org_id-too-short",
    ),
    pytest.param("org_id", "O-ABCDEFGHIJ", "not an organization id", id="org_id-uppercase"),
    pytest.param("org_id", ORG_ID + "\n", "not an organization id", id="org_id-trailing-newline"),
    pytest.param("org_id", "o-abcdefghi\u0661", "not an organization id", id="org_id-unicode"),
    pytest.param("org_id", 5, "must be a string, got integer", id="org_id-integer"),
    pytest.param("org_id", None, "must be a string, got null", id="org_id-null"),
    pytest.param(
        "sync_interval_seconds", 59, "must be 60 to 604800 seconds, got 59", id="sync-interval-59"
    ),
    pytest.param("sync_interval_seconds", 604801, "got 604801", id="sync-interval-over-a-week"),
    pytest.param("sync_interval_seconds", "3600", "got string", id="sync-interval-string"),
    pytest.param("sync_interval_seconds", True, "got boolean", id="sync-interval-boolean"),
    pytest.param("sync_interval_seconds", 3600.0, "got number", id="sync-interval-float"),
    pytest.param("aws_rates", {}, "use null for no override", id="aws_rates-empty"),
    pytest.param("aws_rates", "*=1:20", "must be a JSON object", id="aws_rates-string"),
    pytest.param(
        "aws_rates",
        {"*": {"floor": 0, "ceiling": 20}},
        "'*': floor must be from 0.5 to 1000 calls/s, got 0",
        id="aws_rates-zero-floor",
    ),
    pytest.param(
        "aws_rates",
        {"ListRoots": {"floor": 1, "ceiling": 1001}},
        "'ListRoots': ceiling must be from 0.5 to 1000 calls/s, got 1001",
        id="aws_rates-over-1000",
    ),
    pytest.param(
        "aws_rates",
        {"*": {"floor": True, "ceiling": 20}},
        "floor must be a number (calls/s), got boolean",
        id="aws_rates-boolean",
    ),
    pytest.param(
        "aws_rates",
        {"*": {"floor": 1}},
        "'*': ceiling is required",
        id="aws_rates-no-ceiling",
    ),
    pytest.param(
        "aws_rates",
        {"list-parents": {"floor": 1, "ceiling": 2}},
        "not an AWS Organizations operation",
        id="aws_rates-not-an-api-name",
    ),
    pytest.param(
        "aws_rates",
        {f"Api{n}": {"floor": 1, "ceiling": 2} for n in range(51)},
        "at most 50 entries (maxProperties), got 51",
        id="aws_rates-51",
    ),
    # the schema cannot check these three
    pytest.param(
        "aws_rates",
        {"*": {"floor": 5, "ceiling": 2}},
        "floor 5 must not exceed ceiling 2",
        id="aws_rates-floor-above-ceiling",
    ),
    pytest.param(
        "aws_rates",
        {"ListParent": {"floor": 1, "ceiling": 2}},
        "(did you mean 'ListParents'?)",
        id="aws_rates-typo",
    ),
    pytest.param(
        "aws_rates",
        {"AssumeRole": {"floor": 1, "ceiling": 2}},
        "set it in ORGSYNC_AWS_RATES",
        id="aws_rates-sts",
    ),
]


@pytest.mark.parametrize(("name", "value"), VALID)
def test_a_valid_value_is_accepted(name: str, value: Any) -> None:
    request = accepted(with_fields(NEW, **{name: value}))

    assert request.request_id == (value if name == "request_id" else NEW["request_id"])


@pytest.mark.parametrize(("name", "value", "message"), INVALID)
def test_an_invalid_value_is_one_problem_naming_its_field(
    name: str, value: Any, message: str
) -> None:
    problems = rejected(with_fields(NEW, **{name: value}))

    assert [problem.field for problem in problems] == [name]
    assert message in problems[0].message


def test_the_seed_example_arn_is_rejected_for_its_partition_alone() -> None:
    problems = rejected(with_fields(NEW, org_role_arn=SEED_TYPO_ARN))

    assert problems == [
        Problem("org_role_arn", "partition 'aw' is not one of aws, aws-cn, aws-us-gov")
    ]


def test_every_mistake_in_one_arn_is_explained_in_its_one_problem() -> None:
    bad = f"arn:aw:sts:us-east-1:{ARABIC_INDIC_ACCOUNT}:user/Bob"

    [problem] = rejected(with_fields(NEW, org_role_arn=bad))

    assert problem.field == "org_role_arn"
    for part in ("partition 'aw'", "service 'sts'", "region", "account id", "'role/'"):
        assert part in problem.message


@pytest.mark.parametrize(
    "missing",
    ["request_id", "nickname", *REQUIRED_CREDENTIAL_FIELDS],
)
def test_a_new_registration_reports_a_missing_required_field(missing: str) -> None:
    problems = rejected(without(NEW, missing))

    assert [problem.field for problem in problems] == [missing]
    assert problems[0].message.startswith("required")


def test_a_new_registration_without_credentials_names_each_missing_field() -> None:
    problems = rejected(without(NEW, *CREDENTIAL_FIELDS))

    assert [problem.field for problem in problems] == list(REQUIRED_CREDENTIAL_FIELDS)


def test_a_registration_naming_only_its_roles_takes_the_default_sessions() -> None:
    request = accepted(without(NEW, *CREDENTIAL_FIELDS) | ROLES)

    assert ROLES.keys() == {"org_role_arn", "member_role_name"}
    assert request.credentials is not None
    assert request.credentials.org_session_name == "orgsync"
    assert request.credentials.member_session_name == "orgsync"
    assert request.credentials.org_session_duration == 3600
    assert request.credentials.member_session_duration == 3600


def test_a_session_name_given_wins_over_the_default() -> None:
    request = accepted(with_fields(NEW, member_session_name="audit-team"))

    assert request.credentials is not None
    assert request.credentials.member_session_name == "audit-team"


def test_an_update_naming_both_roles_replaces_the_credentials_with_default_sessions() -> None:
    request = accepted(with_fields(UPDATE, **ROLES))

    assert request.credentials is not None
    assert request.credentials.org_session_duration == 3600


def test_an_update_naming_no_credential_field_keeps_the_credentials() -> None:
    assert accepted(with_fields(UPDATE, auto_badge=True)).credentials is None


def test_a_new_registration_takes_default_filters_and_no_external_id() -> None:
    request = accepted(NEW)

    assert request.org_id is None
    assert not request.is_update
    assert request.filter_changes == {}
    assert request.filters() == Filters()
    assert request.credentials == Credentials(**CREDENTIALS, external_id=None)


def test_a_new_registration_keeps_the_filters_it_gives() -> None:
    raw = with_fields(NEW, exclude_prefixes=["Sandbox-"], limit_ou_ids=["r-ab12"], auto_badge=True)

    request = accepted(raw)

    assert request.filter_changes == {
        "exclude_prefixes": ("Sandbox-",),
        "limit_ou_ids": ("r-ab12",),
        "auto_badge": True,
    }
    assert request.filters() == Filters(
        exclude_prefixes=("Sandbox-",), limit_ou_ids=("r-ab12",), auto_badge=True
    )


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(with_fields(NEW, role_arn=ARN), id="one-unknown"),
        pytest.param(with_fields(UPDATE, Nickname="Prod"), id="case-matters"),
    ],
)
def test_an_unknown_field_is_named(raw: dict[str, Any]) -> None:
    [unknown] = [name for name in raw if name not in ALL_FIELDS]

    assert rejected(raw) == [Problem(unknown, "unknown field")]


def test_every_unknown_field_is_named() -> None:
    problems = rejected(with_fields(UPDATE, color="red", size=3))

    assert problems == [Problem("color", "unknown field"), Problem("size", "unknown field")]


def test_an_unknown_field_name_that_could_garble_a_log_line_is_escaped() -> None:
    problems = rejected(with_fields(UPDATE, **{"evil\nlevel=error": 1, "k" * 100: 2}))

    assert [problem.field for problem in problems] == ["'evil\\nlevel=error'", f"'{'k' * 40}'..."]


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        pytest.param([NEW], "array", id="array"),
        pytest.param(json.dumps(NEW), "string", id="string"),
        pytest.param(None, "null", id="null"),
        pytest.param(5, "integer", id="integer"),
        pytest.param(1.5, "number", id="number"),
        pytest.param(True, "boolean", id="boolean"),
    ],
)
def test_a_body_that_is_not_an_object_is_one_problem(raw: object, kind: str) -> None:
    assert rejected(raw) == [Problem("request", f"must be a JSON object, got {kind}")]


def test_every_problem_is_reported_at_once() -> None:
    raw = with_fields(
        NEW,
        nickname=" Prod",
        org_role_arn=SEED_TYPO_ARN,
        org_session_duration=899,
        external_id="a",
        limit_ou_ids="ou-ab12-abcdefgh",
    )

    problems = rejected(raw)

    assert [problem.field for problem in problems] == [
        "nickname",
        "org_role_arn",
        "org_session_duration",
        "external_id",
        "limit_ou_ids",
    ]


# --- updates ---


def test_an_update_without_credential_fields_keeps_the_credentials() -> None:
    request = accepted(UPDATE)

    assert request.is_update
    assert request.credentials is None
    assert request.nickname is None
    assert request.filter_changes == {}


def test_an_update_may_change_one_filter_and_keep_the_others() -> None:
    existing = Filters(exclude_prefixes=("Sandbox-",), auto_badge=True, limit_ou_ids=("r-ab12",))

    request = accepted(with_fields(UPDATE, auto_remove_suspended=True))

    assert request.filter_changes == {"auto_remove_suspended": True}
    assert request.filters(existing) == Filters(
        exclude_prefixes=("Sandbox-",),
        auto_remove_suspended=True,
        auto_badge=True,
        limit_ou_ids=("r-ab12",),
    )


def test_an_update_may_clear_a_list_filter() -> None:
    existing = Filters(exclude_prefixes=("Sandbox-",))

    request = accepted(with_fields(UPDATE, exclude_prefixes=[]))

    assert request.filters(existing) == Filters()


def test_an_update_with_every_credential_field_replaces_them_all() -> None:
    request = accepted(with_fields(UPDATE, **CREDENTIALS, external_id="tenant-42"))

    assert request.credentials == Credentials(**CREDENTIALS, external_id="tenant-42")


def test_an_update_without_external_id_replaces_it_with_none() -> None:
    request = accepted(with_fields(UPDATE, **CREDENTIALS))

    assert request.credentials is not None
    assert request.credentials.external_id is None


def test_an_update_without_nickname_is_valid_and_one_with_it_renames() -> None:
    assert accepted(with_fields(UPDATE, nickname="Renamed")).nickname == "Renamed"


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        pytest.param(["org_role_arn"], REQUIRED_CREDENTIAL_FIELDS[1:], id="only-the-arn"),
        pytest.param(["external_id"], REQUIRED_CREDENTIAL_FIELDS, id="only-the-external-id"),
        pytest.param(
            ["org_role_arn", "org_session_duration", "external_id"],
            ("member_role_name",),
            id="all-but-one",
        ),
    ],
)
def test_an_update_with_some_credential_fields_is_one_problem_naming_the_missing(
    given: list[str], missing: tuple[str, ...]
) -> None:
    values = {**CREDENTIALS, "external_id": "tenant-42"}

    problems = rejected(with_fields(UPDATE, **{name: values[name] for name in given}))

    assert [problem.field for problem in problems] == ["credentials"]
    assert problems[0].message.endswith("missing " + ", ".join(missing))
    assert "all-or-nothing" in problems[0].message


def test_an_update_with_some_credential_fields_also_reports_their_own_problems() -> None:
    problems = rejected(with_fields(UPDATE, org_role_arn=SEED_TYPO_ARN))

    assert [problem.field for problem in problems] == ["org_role_arn", "credentials"]


# --- filters and credentials ---


def test_filters_updated_rejects_a_field_that_is_not_a_filter() -> None:
    with pytest.raises(ValueError, match="nickname"):
        Filters().updated({"nickname": "x"})


def test_filters_updated_stores_lists_as_tuples() -> None:
    assert Filters().updated({"limit_ou_ids": ["r-ab12"]}).limit_ou_ids == ("r-ab12",)


@pytest.mark.parametrize("partition", PARTITIONS)
def test_credentials_know_the_partition_and_management_account_from_the_arn(
    partition: str,
) -> None:
    credentials = Credentials(**with_fields(CREDENTIALS, org_role_arn=arn(partition=partition)))

    assert credentials.partition == partition
    assert credentials.management_account_id == ACCOUNT


def test_credentials_repr_shows_no_value() -> None:
    credentials = Credentials(**CREDENTIALS, external_id="tenant-42")

    assert repr(credentials) == "Credentials(<redacted>)"
    assert "tenant-42" not in str(credentials)


# --- redaction and log hygiene ---


def test_the_redacted_request_holds_no_credential_value() -> None:
    raw = with_fields(NEW, external_id="tenant-secret-42", exclude_prefixes=["Sandbox-"])

    shown = redacted(accepted(raw))

    assert shown == {
        "request_id": "req-1",
        "org_id": None,
        "nickname": "Production",
        "filters": {"exclude_prefixes": ["Sandbox-"]},
        "credentials": "given",
    }
    text = json.dumps(shown)
    for value in (ARN, ACCOUNT, "tenant-secret-42", "orgsync-org", "Member-Role"):
        assert value not in text


def test_the_redacted_update_says_the_credentials_are_kept() -> None:
    shown = redacted(accepted(with_fields(UPDATE, auto_badge=False)))

    assert shown == {
        "request_id": "req-2",
        "org_id": ORG_ID,
        "nickname": None,
        "filters": {"auto_badge": False},
        "credentials": "kept",
    }


def test_problems_never_quote_a_credential_value() -> None:
    raw = with_fields(
        NEW,
        org_role_arn=f"arn:aw:iam::{ACCOUNT}:role/Secret Role",
        external_id="tenant secret 42",
        member_role_name="hidden path/Member Role",
    )

    text = " ".join(problem.message for problem in rejected(raw))

    for value in (ACCOUNT, "Secret", "tenant", "secret", "hidden", "Member"):
        assert value not in text


# --- one path: the schema decides, the formatter words ---


def test_the_schema_names_exactly_the_request_fields_in_their_order() -> None:
    assert tuple(schemas.validator("registration_request").schema["properties"]) == ALL_FIELDS


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("request_id", "req-1\n", id="a-final-dollar-is-the-end-of-the-text"),
        pytest.param("org_session_duration", 3600.0, id="an-integer-is-written-without-fraction"),
        pytest.param("nickname", "Prod\u200b", id="printable-is-pythons-isprintable"),
        pytest.param("member_role_name", "p" * 511 + "/Reader", id="the-iam-path-bound"),
    ],
)
def test_the_schema_itself_refuses_what_pythons_jsonschema_would_let_through(
    name: str, value: Any
) -> None:
    assert not schemas.validator("registration_request").is_valid(with_fields(NEW, **{name: value}))


def test_a_standalone_role_is_checked_by_the_same_field_rules() -> None:
    assert field_problems("org_role_arn", SEED_TYPO_ARN) == [
        "partition 'aw' is not one of aws, aws-cn, aws-us-gov"
    ]
    assert field_problems("org_session_duration", 899) == ["must be 900 to 43200 seconds, got 899"]
    assert field_problems("external_id", "a b") == [
        "may only contain [A-Za-z0-9_+=,.@:/-], found ' '"
    ]
    assert field_problems("org_session_name", "orgsync") == []


# --- properties ---

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(ALL_FIELDS) | st.text(max_size=8)
requestish = st.one_of(
    json_values,
    st.dictionaries(field_names, json_values, max_size=8),
    st.builds(lambda changes: {**NEW, **changes}, st.dictionaries(field_names, json_values)),
    st.builds(lambda changes: {**UPDATE, **changes}, st.dictionaries(field_names, json_values)),
)


def ascii_token(chars: str, low: int, high: int) -> st.SearchStrategy[str]:
    return st.from_regex(f"[{chars}]{{{low},{high}}}", fullmatch=True)


NAME = "A-Za-z0-9_+=,.@-"
path_segments = st.lists(st.from_regex(r"[\x21-\x2E\x30-\x7E]{1,12}", fullmatch=True), max_size=3)
role_with_path = st.builds(
    lambda segments, name: "".join(f"{segment}/" for segment in segments) + name,
    path_segments,
    ascii_token(NAME, 1, 64),
)
valid_requests = st.fixed_dictionaries(
    {
        "request_id": ascii_token("A-Za-z0-9._:-", 1, 128),
        "nickname": st.text(min_size=1, max_size=64).filter(
            lambda text: text.isprintable() and text == text.strip()
        ),
        "org_role_arn": st.builds(
            lambda partition, account, role: f"arn:{partition}:iam::{account}:role/{role}",
            st.sampled_from(PARTITIONS),
            ascii_token("0-9", 12, 12),
            role_with_path,
        ),
        "org_session_name": ascii_token(NAME, 2, 64),
        "org_session_duration": st.integers(900, 43200),
        "member_role_name": st.builds(
            lambda lead, role: lead + role, st.sampled_from(["", "/"]), role_with_path
        ),
        "member_session_name": ascii_token(NAME, 2, 64),
        "member_session_duration": st.integers(900, 43200),
    },
    optional={
        "org_id": st.from_regex(r"o-[a-z0-9]{10,32}", fullmatch=True),
        "external_id": ascii_token("A-Za-z0-9_+=,.@:/-", 2, 1224),
        "exclude_prefixes": st.lists(
            st.text(min_size=1, max_size=128).filter(str.isprintable), unique=True, max_size=3
        ),
        "auto_remove_suspended": st.booleans(),
        "auto_badge": st.booleans(),
        "limit_ou_ids": st.lists(
            st.from_regex(r"ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32}", fullmatch=True),
            unique=True,
            max_size=3,
        ),
        "aws_rates": st.none()
        | st.dictionaries(
            st.sampled_from(["*", "ListParents", "ListRoots", "ListTagsForResource"]),
            st.tuples(st.floats(0.5, 1000), st.floats(0.5, 1000)).map(
                lambda pair: {"floor": min(pair), "ceiling": max(pair)}
            ),
            min_size=1,
            max_size=3,
        ),
    },
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requestish)
def test_any_json_value_yields_a_request_or_problems_and_never_raises(raw: object) -> None:
    request, problems = check_request(raw)

    assert (request is None) == bool(problems)
    assert all(isinstance(problem, Problem) and problem.message for problem in problems)
    if request is not None:
        json.dumps(redacted(request))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_requests)
def test_every_well_formed_request_is_accepted(raw: dict[str, Any]) -> None:
    request = accepted(raw)

    assert request.filters() == Filters().updated(
        {name: raw[name] for name in FILTER_FIELDS if name in raw}
    )
    assert request.credentials is not None
    assert request.credentials.org_role_arn == raw["org_role_arn"]
