"""The IAM policies orgsync's roles need: exactly the calls it makes, nothing more.

The organization management role: the read-only Organizations actions that registration,
discovery and harvesting call (pipelines/registration.py's REQUIRED_ACTIONS), and
iam:SimulatePrincipalPolicy, with which registration checks that role's own permissions.
The change-event feed adds the Organizations reads of pipelines/where_now.py's FEED_ACTIONS; its
queue's receive and delete are granted by the queue's own policy (deploy/aws/events-queue.yaml).
The member role in each account: orgsync only assumes it (validation), so it needs a trust
policy and no permissions of its own. deploy/aws/ holds the same policies as files and as
CloudFormation templates; tests/unit/test_deploy_aws.py keeps them equal to these.
"""

from __future__ import annotations

import re
from typing import Any

from orgsync.pipelines.registration_checks import REQUIRED_ACTIONS
from orgsync.pipelines.where_now import FEED_ACTIONS

VERSION = "2012-10-17"
SIMULATE = "iam:SimulatePrincipalPolicy"
ORG_ROLE_ACTIONS: tuple[str, ...] = (*sorted(REQUIRED_ACTIONS), *sorted(FEED_ACTIONS), SIMULATE)
# deploy/aws/trust-policy.json's principal: no ARN at all, so that IAM refuses it as it is
PRINCIPAL_PLACEHOLDER = "YOUR_ORGSYNC_PRINCIPAL_ARN"
_PRINCIPAL = re.compile(r"arn:aws(-cn|-us-gov)?:iam::\d{12}:(root|(role|user)/.+)")
_SESSION = re.compile(r"arn:(aws(?:-cn|-us-gov)?):sts::(\d{12}):assumed-role/([^/]+)/.+")
FIND_PRINCIPAL = (
    "`aws sts get-caller-identity --query Arn --output text` on the machine orgsync runs on"
    " shows it"
)
EXTERNAL_ID_PLACEHOLDER = "EXTERNAL_ID"


def org_permissions() -> dict[str, Any]:
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "ReadTheOrganization",
                "Effect": "Allow",
                "Action": sorted(REQUIRED_ACTIONS),
                "Resource": "*",
            },
            {
                # the change-event feed re-reads where an account or an OU is now; the queue
                # itself is granted by its own policy (deploy/aws/events-queue.yaml)
                "Sid": "FollowChangeEvents",
                "Effect": "Allow",
                "Action": sorted(FEED_ACTIONS),
                "Resource": "*",
            },
            {
                # registration simulates the role's own policy before it trusts it
                "Sid": "CheckOwnPermissions",
                "Effect": "Allow",
                "Action": [SIMULATE],
                "Resource": "*",
            },
        ],
    }


def session_role(arn: str) -> str | None:
    """The role an assumed-role session ARN came from (without its path, which the session
    ARN does not carry), or None for any other ARN."""
    session = _SESSION.fullmatch(arn)
    if session is None:
        return None
    partition, account, role = session.groups()
    return f"arn:{partition}:iam::{account}:role/{role}"


def principal_problem(principal: str) -> str | None:
    """Why `principal` cannot be trusted by orgsync's roles, or None. An assumed-role session
    (what get-caller-identity answers under SSO, CloudShell or an instance role) is refused with
    the role it came from: a trust policy naming a session trusts that session only, and it
    ends within hours."""
    role = session_role(principal)
    if role:
        name = role.rsplit("/", 1)[-1]
        return (
            f"{principal} is an assumed-role session, which ends within hours; trust the role it"
            f" came from: {role} (with the role's path, if it has one: aws iam get-role"
            f" --role-name {name} --query Role.Arn)"
        )
    if not _PRINCIPAL.fullmatch(principal):
        return (
            f"{principal!r} is not an IAM role or user ARN (arn:aws:iam::<12 digits>:role/<name>"
            f" or user/<name>); {FIND_PRINCIPAL}"
        )
    return None


def trust(principal: str, external_id: bool = False) -> dict[str, Any]:
    """Who may assume the role: the principal orgsync runs as, with the external id if any."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "sts:AssumeRole",
    }
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": EXTERNAL_ID_PLACEHOLDER}}
    return {"Version": VERSION, "Statement": [statement]}


def actions(policy: dict[str, Any]) -> set[str]:
    """Every action an Allow statement of `policy` names."""
    found: set[str] = set()
    for statement in policy["Statement"]:
        if statement["Effect"] == "Allow":
            named = statement["Action"]
            found.update([named] if isinstance(named, str) else named)
    return found
