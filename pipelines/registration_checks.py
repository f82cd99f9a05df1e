"""A registration's live checks against AWS, in the order the product documents them.

AssumeRole into the organization role with the service's own credentials; then the role's
permissions for every Organizations action the stages call: the IAM policy simulator first,
each simulated denial confirmed with the real read-only call (the simulator cannot see SCPs with
global condition keys), the real calls alone where the simulator cannot be called. What AWS
answers is scrubbed of the request's credentials before it becomes a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from orgsync.pipelines.assume_role_advice import advice
from orgsync.pipelines.aws_errors import classify
from orgsync.pipelines.feed_queue import queue_access_problems
from orgsync.pipelines.request_rules import Credentials, Problem

# Exactly the Organizations actions that registration, discovery and harvesting call.
REQUIRED_ACTIONS: tuple[str, ...] = (
    "organizations:DescribeOrganization",
    "organizations:ListRoots",
    "organizations:ListAccountsForParent",
    "organizations:ListOrganizationalUnitsForParent",
    "organizations:ListTagsForResource",
)


class AssumedRole(Protocol):
    organizations: Any
    iam: Any

    def queue(self, url: str) -> Any: ...


# assume(credentials, use_external_id) -> clients acting as the organization role
Assume = Callable[[Credentials, bool], AssumedRole]


@dataclass(frozen=True, kw_only=True)
class LiveCheck:
    aws_org_id: str | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def probes(orgs: Any, root_id: str) -> dict[str, Callable[[], object]]:
    """One harmless read-only call per required action."""
    return {
        "organizations:DescribeOrganization": orgs.describe_organization,
        "organizations:ListRoots": lambda: orgs.list_roots(MaxResults=1),
        "organizations:ListAccountsForParent": lambda: orgs.list_accounts_for_parent(
            ParentId=root_id, MaxResults=1
        ),
        "organizations:ListOrganizationalUnitsForParent": lambda: (
            orgs.list_organizational_units_for_parent(ParentId=root_id, MaxResults=1)
        ),
        "organizations:ListTagsForResource": lambda: orgs.list_tags_for_resource(
            ResourceId=root_id
        ),
    }


def simulated_denials(iam: Any, role_arn: str) -> set[str] | None:
    """Actions the IAM policy simulator denies the role, or None when it cannot be called."""
    try:
        results = iam.simulate_principal_policy(
            PolicySourceArn=role_arn, ActionNames=list(REQUIRED_ACTIONS)
        )["EvaluationResults"]
    except Exception:
        return None
    return {r["EvalActionName"] for r in results if r.get("EvalDecision") != "allowed"}


def check_live(assume: Assume, creds: Credentials) -> LiveCheck:
    try:
        role = assume(creds, True)
    except Exception as error:
        e = classify(error)
        reason = scrub(f"cannot assume the organization role: {e.code}: {e.message}", creds)
        causes = advice(e.code, member=False)
        return LiveCheck(
            problems=[Problem("org_role_arn", f"{reason}; {causes}" if causes else reason)]
        )
    warnings: list[str] = []
    denied = simulated_denials(role.iam, creds.org_role_arn)
    if denied is None:
        warnings.append(
            "the IAM policy simulator could not be called; the real read-only "
            "calls decided the role's permissions"
        )
    orgs = role.organizations
    # these two answer what the probes of the other actions need: the org id and a root id
    try:
        org = orgs.describe_organization()["Organization"]
    except Exception as error:
        return LiveCheck(problems=[_may_not("organizations:DescribeOrganization", error, creds)])
    try:
        root_id = orgs.list_roots(MaxResults=1)["Roots"][0]["Id"]
    except Exception as error:
        return LiveCheck(problems=[_may_not("organizations:ListRoots", error, creds)])
    problems: list[Problem] = []
    for action, call in probes(orgs, root_id).items():
        if denied is not None and action not in denied:
            continue
        try:
            call()
        except Exception as error:
            problems.append(_may_not(action, error, creds))
            continue
        if denied is not None:
            warnings.append(
                f"the policy simulator denies {action} but the real call succeeded: probably a "
                "service control policy with global condition keys, which the simulator cannot "
                "evaluate (AWS's known issue); harvesting works"
            )
    if creds.external_id and _assumable_without_external_id(assume, creds):
        warnings.append(
            "the role can be assumed without the external id: its trust policy "
            "should require sts:ExternalId, or anyone who knows the ARN could use "
            "this service against it (confused deputy)"
        )
    return LiveCheck(aws_org_id=org["Id"], problems=problems, warnings=warnings)


def check_queue(assume: Assume, creds: Credentials, url: str) -> list[Problem]:
    """Can the organization role receive from and delete on the change-event queue?"""
    try:
        role = assume(creds, True)
        problems = queue_access_problems(role.queue(url), url)
    except Exception as error:
        e = classify(error)
        problems = [f"the queue could not be checked: {e.code}: {e.message}"]
    return [Problem("events_queue_url", scrub(p, creds)) for p in problems]


def _may_not(action: str, error: Exception, creds: Credentials) -> Problem:
    e = classify(error)
    return Problem(
        "org_role_arn", scrub(f"the role may not call {action}: {e.code}: {e.message}", creds)
    )


def scrub(text: str, creds: Credentials) -> str:
    """`text` (an AWS error message, say) without the request's role ARN, names or external id.

    AWS denials quote the role ARN and the assumed-role session; verdicts are stored, listed
    and logged, and credentials must appear in none of them.
    """
    arn = creds.org_role_arn
    secrets = [arn, arn.split(":", 5)[-1], arn.rsplit("/", 1)[-1], creds.org_session_name]
    if creds.external_id:
        secrets.append(creds.external_id)
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text


def _assumable_without_external_id(assume: Assume, creds: Credentials) -> bool:
    try:
        assume(creds, False)
    except Exception:
        return False
    return True
