"""The live checks of a registration, in the seed's order: AssumeRole, then the permissions.

Fake `assume` callables and fake Organizations/IAM clients play each outcome; the last test runs
the real stages against a simulated AWS and records the Organizations calls they make.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from orgsync.pipelines import discovery, harvest
from orgsync.pipelines.registration_checks import REQUIRED_ACTIONS, LiveCheck, check_live
from orgsync.pipelines.request_rules import Credentials
from orgsync.services.testing.moto_aws import SimulatedAws, SimulatedAwsControl
from orgsync.services.testing.sample_org import OrgSpec, build_organization

ROLE_ARN = "arn:aws:iam::123456789012:role/secret-path/OrgReader"
ORG_ID = "o-abcdefghij"
ROOT_ID = "r-ab12"
SCP_WORDS = "service control policy"


def creds(external_id: str | None = None) -> Credentials:
    return Credentials(
        org_role_arn=ROLE_ARN,
        org_session_name="orgsync-check",
        org_session_duration=3600,
        member_role_name="OrgSyncMember",
        member_session_name="orgsync-member",
        member_session_duration=900,
        external_id=external_id,
    )


def denied(operation: str) -> ClientError:
    # AWS quotes the caller's ARN in a denial: the verdict must not repeat it
    message = (
        "User: arn:aws:sts::123456789012:assumed-role/secret-path/OrgReader/orgsync-check "
        f"is not authorized to perform: {operation} on resource: {ROLE_ARN}"
    )
    return ClientError({"Error": {"Code": "AccessDenied", "Message": message}}, operation)


class FakeOrganizations:
    """Answers every read-only call, except the actions in `deny`, which are AccessDenied."""

    def __init__(self, deny: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.deny = deny
        self.calls: list[str] = []

    def _answer(self, action: str, result: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(action)
        if action in self.deny:
            raise denied(action)
        return result

    def describe_organization(self) -> dict[str, Any]:
        return self._answer("organizations:DescribeOrganization", {"Organization": {"Id": ORG_ID}})

    def list_roots(self, **_: Any) -> dict[str, Any]:
        return self._answer("organizations:ListRoots", {"Roots": [{"Id": ROOT_ID}]})

    def list_accounts_for_parent(self, **_: Any) -> dict[str, Any]:
        return self._answer("organizations:ListAccountsForParent", {"Accounts": []})

    def list_organizational_units_for_parent(self, **_: Any) -> dict[str, Any]:
        return self._answer(
            "organizations:ListOrganizationalUnitsForParent", {"OrganizationalUnits": []}
        )

    def list_tags_for_resource(self, **_: Any) -> dict[str, Any]:
        return self._answer("organizations:ListTagsForResource", {"Tags": []})


class FakeIam:
    """The policy simulator: denies `simulated_denials`, or cannot be called at all."""

    def __init__(self, simulated_denials: set[str] = frozenset(), callable: bool = True) -> None:  # type: ignore[assignment]
        self.simulated_denials = simulated_denials
        self.callable = callable
        self.asked: list[tuple[str, list[str]]] = []

    def simulate_principal_policy(self, PolicySourceArn: str, ActionNames: list[str]) -> Any:
        self.asked.append((PolicySourceArn, ActionNames))
        if not self.callable:
            raise denied("iam:SimulatePrincipalPolicy")
        return {
            "EvaluationResults": [
                {
                    "EvalActionName": action,
                    "EvalDecision": "implicitDeny"
                    if action in self.simulated_denials
                    else "allowed",
                }
                for action in ActionNames
            ]
        }


class Role:
    def __init__(self, organizations: FakeOrganizations, iam: FakeIam) -> None:
        self.organizations = organizations
        self.iam = iam


class FakeAssume:
    """AssumeRole with the service's credentials; records whether the external id was sent."""

    def __init__(
        self,
        role: Role | None = None,
        *,
        assumable: bool = True,
        requires_external_id: bool = True,
    ) -> None:
        self.role = role or Role(FakeOrganizations(), FakeIam())
        self.assumable = assumable
        self.requires_external_id = requires_external_id
        self.calls: list[bool] = []

    def __call__(self, credentials: Credentials, use_external_id: bool) -> Role:
        self.calls.append(use_external_id)
        sent = credentials.external_id if use_external_id else None
        if not self.assumable or (self.requires_external_id and credentials.external_id != sent):
            raise denied("sts:AssumeRole")
        return self.role


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


# --- the one list against the calls the stages really make ---------------------------------


@pytest.fixture(scope="module")
def simulated() -> Iterator[SimulatedAws]:
    # moto keeps its state in module globals: start empty and leave nothing behind
    with SimulatedAws() as aws:
        SimulatedAwsControl(aws.endpoint_url).reset()
        yield aws
        SimulatedAwsControl(aws.endpoint_url).reset()


def recording_client(endpoint_url: str, calls: list[str]) -> Any:
    client = boto3.client(
        "organizations",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.meta.events.register(
        "before-call.organizations",
        lambda model, **_: calls.append(f"organizations:{model.name}"),
    )
    return client


def test_the_required_actions_are_exactly_the_organizations_calls_the_stages_make(
    simulated: SimulatedAws,
) -> None:
    org = build_organization(
        simulated.endpoint_url, OrgSpec(accounts=3, depth=1, branching=1, suspended=0, excluded=0)
    )
    calls: list[str] = []
    client = recording_client(simulated.endpoint_url, calls)

    # registration's own calls, with a simulator that allows everything (so no probes)
    check = check_live(FakeAssume(Role(client, FakeIam())), creds())
    assert check.problems == [] and check.aws_org_id == org.org_id
    seen = [account.account_id for batch in discovery.walk(client, ()) for account in batch]
    assert set(seen) >= {a.id for a in org.accounts}
    for account_id in seen:
        harvest.fetch_tags(client, account_id)

    assert sorted(set(calls)) == sorted(REQUIRED_ACTIONS)
