"""The live checks of a registration, in the seed's order: AssumeRole, then the permissions.

Fake `assume` callables and fake Organizations/IAM clients (tests/support/live_checks.py) play
each outcome; tests/integration/test_registration_live.py runs the real stages against a
simulated AWS and records the Organizations calls they make.
"""

from __future__ import annotations

from orgsync.pipelines.registration_checks import REQUIRED_ACTIONS, LiveCheck, check_live
from tests.support.live_checks import (
    ORG_ID,
    ROLE_ARN,
    SCP_WORDS,
    FakeAssume,
    FakeIam,
    FakeOrganizations,
    Role,
    creds,
)


def assert_no_credential_in(check: LiveCheck) -> None:
    text = repr(check)
    assert "secret-path" not in text and "OrgReader" not in text and "orgsync-check" not in text


def test_a_role_that_cannot_be_assumed_is_rejected_on_the_role_field_without_quoting_the_arn() -> (
    None
):
    check = check_live(FakeAssume(assumable=False), creds())

    assert check.aws_org_id is None
    [problem] = check.problems
    assert problem.field == "org_role_arn"
    assert problem.message.startswith("cannot assume the organization role: AccessDenied")
    assert_no_credential_in(check)


def test_a_simulated_denial_confirmed_by_the_real_call_rejects_the_request_naming_the_action() -> (
    None
):
    action = "organizations:ListTagsForResource"
    role = Role(FakeOrganizations(deny={action}), FakeIam(simulated_denials={action}))

    check = check_live(FakeAssume(role), creds())

    [problem] = check.problems
    assert problem.field == "org_role_arn"
    assert f"may not call {action}: AccessDenied" in problem.message
    assert not any(SCP_WORDS in w for w in check.warnings)
    assert_no_credential_in(check)


def test_a_confirmed_denial_of_describe_organization_names_that_action() -> None:
    action = "organizations:DescribeOrganization"
    role = Role(FakeOrganizations(deny={action}), FakeIam(simulated_denials={action}))

    check = check_live(FakeAssume(role), creds())

    assert [p.message.split(":")[:2] for p in check.problems] == [
        ["the role may not call organizations", "DescribeOrganization"]
    ]


def test_a_denial_the_real_call_contradicts_is_accepted_with_a_warning_naming_the_scp_issue() -> (
    None
):
    action = "organizations:ListAccountsForParent"
    organizations = FakeOrganizations()
    role = Role(organizations, FakeIam(simulated_denials={action}))

    check = check_live(FakeAssume(role), creds())

    assert check.problems == []
    assert check.aws_org_id == ORG_ID
    [warning] = check.warnings
    assert action in warning and SCP_WORDS in warning and "global condition keys" in warning
    # only the denied action is probed beyond the two calls registration always makes
    assert organizations.calls == [
        "organizations:DescribeOrganization",
        "organizations:ListRoots",
        action,
    ]


def test_when_the_simulator_cannot_be_called_the_real_calls_accept_and_the_verdict_says_so() -> (
    None
):
    organizations = FakeOrganizations()
    role = Role(organizations, FakeIam(callable=False))

    check = check_live(FakeAssume(role), creds())

    assert check.problems == [] and check.aws_org_id == ORG_ID
    [warning] = check.warnings
    assert "simulator could not be called" in warning and "real read-only calls decided" in warning
    assert set(organizations.calls) == set(REQUIRED_ACTIONS)


def test_when_the_simulator_cannot_be_called_a_failing_real_call_rejects() -> None:
    action = "organizations:ListOrganizationalUnitsForParent"
    role = Role(FakeOrganizations(deny={action}), FakeIam(callable=False))

    check = check_live(FakeAssume(role), creds())

    assert [p.field for p in check.problems] == ["org_role_arn"]
    assert action in check.problems[0].message
    assert any("simulator could not be called" in w for w in check.warnings)
    assert_no_credential_in(check)


def test_an_external_id_the_role_does_not_require_is_a_confused_deputy_warning() -> None:
    assume = FakeAssume(requires_external_id=False)

    check = check_live(assume, creds(external_id="tenant-0f3c2a"))

    assert check.problems == []
    assert assume.calls == [True, False]  # with the external id, then without it
    assert any("confused deputy" in w and "sts:ExternalId" in w for w in check.warnings)


def test_an_external_id_the_role_requires_raises_no_warning() -> None:
    assume = FakeAssume(requires_external_id=True)

    check = check_live(assume, creds(external_id="tenant-0f3c2a"))

    assert check.problems == [] and check.warnings == []
    assert assume.calls == [True, False]


def test_without_an_external_id_the_role_is_assumed_once() -> None:
    assume = FakeAssume()

    check_live(assume, creds())

    assert assume.calls == [True]


def test_the_simulator_is_asked_about_the_organization_role_and_exactly_the_required_actions() -> (
    None
):
    iam = FakeIam()

    check_live(FakeAssume(Role(FakeOrganizations(), iam)), creds())

    assert iam.asked == [(ROLE_ARN, list(REQUIRED_ACTIONS))]
