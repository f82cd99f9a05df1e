"""Builds a realistic sample AWS organization inside the simulated AWS.

Used by `orgsync demo`, the end-to-end tests and the benchmark. Everything is derived from
`OrgSpec.seed`, and moto's id generator is seeded too, so one spec yields the same
organization (names, tags, OU tree and ids) on every run against a freshly reset server.

moto keeps one organization per AWS account, so a second organization lives in a second
management account (`OTHER_MANAGEMENT_ACCOUNT_ID`, or any other): orgsync reaches it by
assuming its role there, and moto then acts in that account for every call of the session.
"""

from __future__ import annotations

import contextlib
import json
import random
import urllib.error
from dataclasses import dataclass, field
from typing import Any, Literal

import boto3
from botocore.config import Config

from orgsync.services.testing.moto_aws import SimulatedAwsControl

MANAGEMENT_ACCOUNT_ID = "123456789012"  # moto's default account; it must create the org
# orgsync's own account: moto's default, where the service's credentials ("testing") act
SERVICE_ACCOUNT_ID = MANAGEMENT_ACCOUNT_ID
OTHER_MANAGEMENT_ACCOUNT_ID = "111122223333"  # a second organization's (never a member's)
ORG_ROLE_NAME = "OrgSyncReadOnly"
MEMBER_ROLE_NAME = "OrgSyncMember"
ROOT_NAME = "Root"

# OU names per nesting level; levels past the last reuse it.
OU_NAMES_BY_LEVEL = (
    ("Engineering", "Finance", "Security", "Operations", "Data", "Marketing", "Research"),
    ("Prod", "Dev", "Staging", "Shared", "QA", "Test"),
    ("Apps", "Platform", "Analytics", "Networking", "Payments", "Identity"),
    ("Core", "Edge", "Batch", "Streaming", "Web", "Mobile"),
)
ENV_BY_OU = {"Prod": "prod", "Dev": "dev", "Staging": "staging", "Shared": "shared", "QA": "qa"}
Service = Literal["organizations", "iam", "sts", "sqs", "events"]
TAG_KEYS = ("env", "team", "cost-center", "owner", "data-classification", "compliance")


@dataclass(frozen=True)
class OrgSpec:
    accounts: int = 60  # member accounts; list_accounts also returns the management account
    depth: int = 3  # levels of OUs under the root
    branching: int = 2  # OUs per parent
    suspended: int = 2
    excluded_prefix: str = "sandbox-"
    excluded: int = 2  # accounts whose names start with excluded_prefix
    tags_per_account: int = 2
    seed: int = 42

    def __post_init__(self) -> None:
        if min(self.accounts, self.depth, self.suspended, self.excluded) < 0:
            raise ValueError("counts must be >= 0")
        if self.depth and self.branching < 1:
            raise ValueError("branching must be >= 1 when depth > 0")
        if self.suspended + self.excluded > self.accounts:
            raise ValueError("suspended + excluded accounts exceed the number of accounts")


@dataclass(frozen=True)
class SampleAccount:
    id: str
    name: str
    email: str
    path: str  # "Root/Engineering/Prod"
    tags: dict[str, str]
    suspended: bool
    parent_id: str


@dataclass(frozen=True)
class SampleOrg:
    org_id: str
    root_id: str
    management_account_id: str
    org_role_arn: str
    member_role_name: str
    ous: dict[str, str]  # OU id -> path
    accounts: list[SampleAccount] = field(default_factory=list)


def aws_client(endpoint_url: str, service: Service, account_id: str = MANAGEMENT_ACCOUNT_ID) -> Any:
    """A boto3 client whose requests moto attributes to `account_id` without a key lookup.

    Without the `x-moto-account-id` header moto scans every account's IAM backend on every
    request, which makes building thousands of accounts quadratic (moto-probe §4).
    """
    client = boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 5}),
    )
    client.meta.events.register(
        f"before-sign.{client.meta.service_model.service_id.hyphenize()}",
        lambda request, **_: request.headers.__setitem__("x-moto-account-id", account_id),
    )
    return client


def build_organization(
    endpoint_url: str, spec: OrgSpec, management_account_id: str = MANAGEMENT_ACCOUNT_ID
) -> SampleOrg:
    """The organization of `spec`, created by `management_account_id`, whose role
    (`org_role_arn`) orgsync's own account may assume. An account that is already a member
    of an organization cannot create another (moto refuses, as AWS does)."""
    _seed_ids(endpoint_url, _id_seed(spec.seed, management_account_id))
    rng = random.Random(spec.seed)
    org = aws_client(endpoint_url, "organizations", management_account_id)
    org_id = org.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    root_id = org.list_roots()["Roots"][0]["Id"]
    ous = _create_ou_tree(org, root_id, spec)
    org_role_arn = _create_org_role(aws_client(endpoint_url, "iam", management_account_id))
    parents = _spread_over(list(ous) or [], root_id, spec.accounts, rng)
    paths = {root_id: ROOT_NAME, **ous}
    excluded = set(rng.sample(range(spec.accounts), spec.excluded))
    suspended = set(rng.sample(sorted(set(range(spec.accounts)) - excluded), spec.suspended))
    accounts = []
    for index, parent_id in enumerate(parents):
        name = _account_name(paths[parent_id], index, spec, excluded=index in excluded)
        tags = _account_tags(paths[parent_id], spec.tags_per_account, rng)
        account_id = _create_account(org, root_id, parent_id, name, tags)
        if index in suspended:
            org.close_account(AccountId=account_id)
        accounts.append(
            SampleAccount(
                id=account_id,
                name=name,
                email=_email(name),
                path=paths[parent_id],
                tags=tags,
                suspended=index in suspended,
                parent_id=parent_id,
            )
        )
    return SampleOrg(
        org_id=org_id,
        root_id=root_id,
        management_account_id=management_account_id,
        org_role_arn=org_role_arn,
        member_role_name=MEMBER_ROLE_NAME,
        ous=ous,
        accounts=accounts,
    )


def build_second_organization(
    endpoint_url: str, spec: OrgSpec, management_account_id: str = OTHER_MANAGEMENT_ACCOUNT_ID
) -> SampleOrg:
    """Another organization beside the one `build_organization` made in moto's default account:
    the same shape of names and tags from `spec`, in a management account of its own, with ids
    of its own (moto's id generator is seeded from the spec and the account)."""
    if management_account_id == MANAGEMENT_ACCOUNT_ID:
        raise ValueError("the second organization needs a management account of its own")
    return build_organization(endpoint_url, spec, management_account_id)


def change_tags(
    endpoint_url: str,
    changes: dict[str, dict[str, str | None]],
    management_account_id: str = MANAGEMENT_ACCOUNT_ID,
) -> None:
    """Apply tag edits per account; a value of None removes that key."""
    org = aws_client(endpoint_url, "organizations", management_account_id)
    for account_id, edits in changes.items():
        to_set = [{"Key": k, "Value": v} for k, v in edits.items() if v is not None]
        to_remove = [k for k, v in edits.items() if v is None]
        if to_set:
            org.tag_resource(ResourceId=account_id, Tags=to_set)
        if to_remove:
            org.untag_resource(ResourceId=account_id, TagKeys=to_remove)


def _seed_ids(endpoint_url: str, seed: int) -> None:
    # An endpoint without moto's API (real AWS, a proxy) just gets random ids.
    with contextlib.suppress(urllib.error.URLError, RuntimeError):
        SimulatedAwsControl(endpoint_url).seed(seed)


def _id_seed(seed: int, management_account_id: str) -> int:
    """moto's seed: the spec's own in the default account (the ids every test knows), mixed
    with the account elsewhere, so that two organizations of one spec never share an id."""
    if management_account_id == MANAGEMENT_ACCOUNT_ID:
        return seed
    return seed + int(management_account_id)


def _create_ou_tree(org: Any, root_id: str, spec: OrgSpec) -> dict[str, str]:
    ous: dict[str, str] = {}
    level_parents = {root_id: ROOT_NAME}
    for level in range(spec.depth):
        names = OU_NAMES_BY_LEVEL[min(level, len(OU_NAMES_BY_LEVEL) - 1)]
        next_level: dict[str, str] = {}
        for parent_id, parent_path in level_parents.items():
            for i in range(spec.branching):
                name = _ou_name(names, i)
                ou = org.create_organizational_unit(ParentId=parent_id, Name=name)
                next_level[ou["OrganizationalUnit"]["Id"]] = f"{parent_path}/{name}"
        ous.update(next_level)
        level_parents = next_level
    return ous


def _ou_name(names: tuple[str, ...], index: int) -> str:
    """Names run out past the list's end: "Prod", ..., then "Prod-2"."""
    cycle, position = divmod(index, len(names))
    return names[position] + (f"-{cycle + 1}" if cycle else "")


def _create_org_role(iam: Any) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{SERVICE_ACCOUNT_ID}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    read_only = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["organizations:Describe*", "organizations:List*"],
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": f"arn:aws:iam::*:role/{MEMBER_ROLE_NAME}",
            },
        ],
    }
    role = iam.create_role(RoleName=ORG_ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(
        RoleName=ORG_ROLE_NAME, PolicyName="read-organization", PolicyDocument=json.dumps(read_only)
    )
    return str(role["Role"]["Arn"])


def _spread_over(ou_ids: list[str], root_id: str, count: int, rng: random.Random) -> list[str]:
    """Parents for `count` accounts: every level (the root too) gets some while they last."""
    targets = [root_id, *ou_ids]
    parents = targets[:count] + [rng.choice(targets) for _ in range(count - len(targets))]
    rng.shuffle(parents)
    return parents


def _account_name(path: str, index: int, spec: OrgSpec, excluded: bool) -> str:
    ou_names = path.split("/")[1:]
    base = "-".join(ou_names).lower() if ou_names else "shared-services"
    name = f"{base}-{index + 1:04d}"
    return f"{spec.excluded_prefix}{name}" if excluded else name


def _email(name: str) -> str:
    return f"aws+{name}@example.com"


def _account_tags(path: str, count: int, rng: random.Random) -> dict[str, str]:
    ou_names = path.split("/")[1:]
    team = ou_names[0].lower() if ou_names else "platform"
    env = next((ENV_BY_OU[n] for n in ou_names if n in ENV_BY_OU), None)
    values = {
        "env": env or rng.choice(("prod", "dev", "staging")),
        "team": team,
        "cost-center": f"CC-{rng.randint(1000, 9999)}",
        "owner": f"{team}-leads@example.com",
        "data-classification": rng.choice(("public", "internal", "confidential")),
        "compliance": rng.choice(("none", "pci", "sox", "hipaa")),
    }
    keys = list(TAG_KEYS[:count]) + [f"custom-{i}" for i in range(len(TAG_KEYS), count)]
    return {key: values.get(key, f"value-{key}") for key in keys}


def _create_account(org: Any, root_id: str, parent_id: str, name: str, tags: dict[str, str]) -> str:
    status = org.create_account(
        AccountName=name,
        Email=_email(name),
        RoleName=MEMBER_ROLE_NAME,
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )["CreateAccountStatus"]
    # moto finishes immediately; real AWS would need describe_create_account_status polling.
    account_id = str(status["AccountId"])
    if parent_id != root_id:
        org.move_account(
            AccountId=account_id, SourceParentId=root_id, DestinationParentId=parent_id
        )
    return account_id
