"""A registration's live checks played with fakes: an `assume` callable and the role's
Organizations and IAM clients, each outcome chosen by the test."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from orgsync.pipelines.request_rules import Credentials

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
