"""Where an account or an OU is in AWS now: what the change-event feed reads again before it
acts on an event (the event only says where to look).

Each function makes the fewest calls that answer: DescribeAccount for an account's name and
state, ListParents (and DescribeOrganizationalUnit per level, ListRoots at the top) for its
path and scope, and for an OU the walk of what is below it. Pages are retried like discovery's.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from orgsync.pipelines.aws_errors import classify
from orgsync.pipelines.discovery_walk import Parent, SeenAccount, below, retried, seen

# The Organizations reads of the feed, beyond discovery's: where an account or an OU is now.
FEED_ACTIONS: tuple[str, ...] = (
    "organizations:DescribeAccount",
    "organizations:DescribeOrganizationalUnit",
    "organizations:ListParents",
)


def reread_account(
    client: Any, account_id: str, limit_ou_ids: tuple[str, ...], sleep: Any = time.sleep
) -> SeenAccount | None:
    """The account as AWS has it now, or None when it is not in the organization."""
    try:
        raw = retried(client.describe_account, sleep, AccountId=account_id)["Account"]
    except ClientError as error:
        if classify(error).code == "AccountNotFoundException":
            return None
        raise
    return seen(raw, parent_of(client, account_id, limit_ou_ids, sleep))


def parent_of(client: Any, child_id: str, limit_ou_ids: tuple[str, ...], sleep: Any) -> Parent:
    """The direct parent of an account or OU, with its path from the root and its scope."""
    names: list[str] = []
    chain: list[str] = []
    child = child_id
    while True:
        parents = retried(client.list_parents, sleep, ChildId=child).get("Parents") or []
        if not parents:
            raise ClientError(
                {"Error": {"Code": "MalformedAnswer", "Message": f"no parent of {child}"}},
                "ListParents",
            )
        parent = parents[0]
        chain.append(parent["Id"])
        if parent.get("Type") == "ROOT":
            roots = retried(client.list_roots, sleep).get("Roots") or []
            root: dict[str, Any] = next((r for r in roots if r.get("Id") == parent["Id"]), {})
            names.append(root.get("Name") or "Root")
            break
        ou = retried(client.describe_organizational_unit, sleep, OrganizationalUnitId=parent["Id"])
        names.append(ou["OrganizationalUnit"]["Name"])
        child = parent["Id"]
    scope = set(limit_ou_ids)
    return Parent(chain[0], "/".join(reversed(names)), not scope or bool(scope & set(chain)))


def reread_ou(
    client: Any, ou_id: str, limit_ou_ids: tuple[str, ...], sleep: Any = time.sleep
) -> list[SeenAccount]:
    """Every account below the OU, with the path AWS gives it now."""
    try:
        ou = retried(client.describe_organizational_unit, sleep, OrganizationalUnitId=ou_id)
    except ClientError as error:
        if classify(error).code == "OrganizationalUnitNotFoundException":
            return []
        raise
    above = parent_of(client, ou_id, limit_ou_ids, sleep)
    name = ou["OrganizationalUnit"]["Name"]
    top = Parent(ou_id, f"{above.path}/{name}", above.in_scope or ou_id in limit_ou_ids)
    return [account for page in below(client, [top], limit_ou_ids, sleep) for account in page]
