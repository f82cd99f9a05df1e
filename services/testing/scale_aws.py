"""A simulated AWS for organizations of any size: exactly the calls orgsync makes, on the wire.

moto slows down with every account it holds (every request scans every account's backend,
moto-probe §4), so a 10,000-account benchmark cannot run on it. This server speaks the same
protocols boto3 uses, for the calls orgsync and its benchmark make and nothing else:

- Organizations, JSON 1.1 (`X-Amz-Target: AWSOrganizationsV20161128.*`): DescribeOrganization,
  ListRoots, ListOrganizationalUnitsForParent, ListAccountsForParent, ListAccounts,
  DescribeAccount, DescribeOrganizationalUnit, ListParents, ListTagsForResource, and
  TagResource / UntagResource to change tags while it runs;
- STS AssumeRole and GetCallerIdentity, IAM SimulatePrincipalPolicy (query protocol, XML).

The organization is generated from a `sample_org.OrgSpec` with the same seeded draws as
`sample_org.build_organization`, so one spec gives the same names, OU paths, tags and
suspended accounts here and in moto; only the ids differ (here they are derived from the
account's position). It holds a few small arrays per account, not objects: 100,000 accounts
take tens of megabytes. Latency and faults come from `simulated_aws.FaultState`, driven over
the same `/_sim/` control plane (`SimulatedAwsControl`), and each request is served on its own
thread (one per client connection), so a 50 ms latency never holds up other requests.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import random
import signal
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from xml.sax.saxutils import escape

from orgsync.services.testing.moto_aws import (
    _JSON_MESSAGES,
    DEFAULT_CALLER_ACCOUNT,
    AwsCall,
    Fault,
    FaultState,
    ServedInThread,
    _write_port_file,
    add_rate_arguments,
    fault_control,
    rates_from_args,
)
from orgsync.services.testing.sample_org import (
    MANAGEMENT_ACCOUNT_ID,
    MEMBER_ROLE_NAME,
    ORG_ROLE_NAME,
    OU_NAMES_BY_LEVEL,
    ROOT_NAME,
    TAG_KEYS,
    OrgSpec,
    SampleAccount,
    SampleOrg,
    _account_name,
    _account_tags,
    _email,
    _ou_name,
    _spread_over,
)
from orgsync.services.testing.scale_orgs import Directory

PAGE_LIMIT = 20  # AWS Organizations returns at most 20 items a page
FIRST_ACCOUNT_ID = 100_000_000_000  # member i is account FIRST_ACCOUNT_ID + i
# organization k > 0 of a simulator: management account OTHER_MANAGEMENT + k, member i account
# FIRST_ACCOUNT_ID + k * ORG_STRIDE + i (twelve digits for up to 89 organizations)
OTHER_MANAGEMENT = 200_000_000_000
ORG_STRIDE = 1_000_000_000
MANAGEMENT_NAME = "master"  # what moto calls the management account
JOINED_AT = 1_767_225_600.0  # 2026-01-01T00:00:00Z; member i joined i seconds later
MANAGEMENT = -1  # the management account's index
ORG_SPEC_FIELDS = ("accounts", "depth", "branching", "suspended", "excluded", "tags_per_account")


class AwsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _invalid(message: str) -> AwsError:
    return AwsError(400, "InvalidInputException", message)


@dataclass
class ScaleOrg:
    """A generated organization, held as arrays indexed by account and by parent.

    Parent 0 is the root, parent k > 0 is OU k - 1. Names and emails are recomputed from
    (parent path, index) on demand; tags are tuples of values for the spec's tag keys.
    """

    spec: OrgSpec
    org_id: str
    root_id: str
    parent_ids: list[str]
    parent_paths: list[str]
    parent_of_parent: list[int]  # -1 for the root
    ou_children: list[list[int]]
    account_parent: array  # type: ignore[type-arg]
    parent_accounts: list[array]  # type: ignore[type-arg]
    tag_keys: tuple[str, ...]
    tag_values: list[tuple[str, ...]]
    excluded: frozenset[int]
    suspended: frozenset[int]
    tag_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    name_overrides: dict[int, str] = field(default_factory=dict)  # renamed or moved accounts
    lock: threading.Lock = field(default_factory=threading.Lock)
    management_account_id: str = MANAGEMENT_ACCOUNT_ID
    first_account_id: int = FIRST_ACCOUNT_ID

    def __post_init__(self) -> None:
        self._parent_lookup = {pid: i for i, pid in enumerate(self.parent_ids)}

    @property
    def size(self) -> int:
        return len(self.account_parent)

    @property
    def org_role_arn(self) -> str:
        return f"arn:aws:iam::{self.management_account_id}:role/{ORG_ROLE_NAME}"

    def arn(self, kind: str, resource_id: str) -> str:
        management = self.management_account_id
        return f"arn:aws:organizations::{management}:{kind}/{self.org_id}/{resource_id}"

    # ---- accounts by index ---------------------------------------------------------------

    def account_id(self, index: int) -> str:
        if index == MANAGEMENT:
            return self.management_account_id
        return str(self.first_account_id + index)

    def index_of(self, account_id: str) -> int | None:
        if account_id == self.management_account_id:
            return MANAGEMENT
        if len(account_id) != 12 or not account_id.isdigit():
            return None
        index = int(account_id) - self.first_account_id
        return index if 0 <= index < self.size else None

    def name(self, index: int) -> str:
        if index == MANAGEMENT:
            return MANAGEMENT_NAME
        if (renamed := self.name_overrides.get(index)) is not None:
            return renamed
        path = self.parent_paths[self.account_parent[index]]
        return _account_name(path, index, self.spec, excluded=index in self.excluded)

    def email(self, index: int) -> str:
        return "master@example.com" if index == MANAGEMENT else _email(self.name(index))

    def parent(self, index: int) -> int:
        return 0 if index == MANAGEMENT else self.account_parent[index]

    def tags(self, resource_id: str) -> dict[str, str]:
        with self.lock:
            override = self.tag_overrides.get(resource_id)
            if override is not None:
                return dict(override)
        index = self.index_of(resource_id)
        if index is None or index == MANAGEMENT:
            return {}
        return dict(zip(self.tag_keys, self.tag_values[index], strict=True))

    def edit_tags(self, resource_id: str, to_set: dict[str, str], to_remove: list[str]) -> None:
        tags = self.tags(resource_id)
        tags.update(to_set)
        for key in to_remove:
            tags.pop(key, None)
        with self.lock:
            self.tag_overrides[resource_id] = tags

    def edit_account(self, index: int, name: str | None, parent_id: str | None) -> None:
        """Rename and/or move a member account, as AWS would without an event reaching anyone
        (a moved account keeps its name, which is otherwise drawn from its path)."""
        parent = None if parent_id is None else self.parent_index(parent_id)
        if index == MANAGEMENT or (parent_id is not None and parent is None):
            raise ValueError("only a member account can be edited, and only into a known parent")
        with self.lock:
            self.name_overrides[index] = self.name(index) if name is None else name
            if parent is not None:
                old = self.account_parent[index]
                members = self.parent_accounts[old]
                del members[members.index(index)]
                self.parent_accounts[parent].append(index)
                self.account_parent[index] = parent

    def account(self, index: int) -> dict[str, Any]:
        account_id = self.account_id(index)
        state = "SUSPENDED" if index in self.suspended else "ACTIVE"
        return {
            "Id": account_id,
            "Arn": self.arn("account", account_id),
            "Email": self.email(index),
            "Name": self.name(index),
            "Status": state,
            "State": state,
            "JoinedMethod": "CREATED",
            "JoinedTimestamp": JOINED_AT + (0 if index == MANAGEMENT else index + 1),
        }

    def accounts_of(self, parent: int) -> list[int]:
        members = list(self.parent_accounts[parent])
        return [MANAGEMENT, *members] if parent == 0 else members

    # ---- OUs and the root ------------------------------------------------------------------

    def parent_index(self, parent_id: str) -> int | None:
        return self._parent_lookup.get(parent_id)

    def ou(self, parent: int) -> dict[str, Any]:
        ou_id = self.parent_ids[parent]
        name = self.parent_paths[parent].rsplit("/", 1)[-1]
        return {"Id": ou_id, "Arn": self.arn("ou", ou_id), "Name": name}

    def parent_ref(self, parent: int) -> dict[str, str]:
        kind = "ROOT" if parent == 0 else "ORGANIZATIONAL_UNIT"
        return {"Id": self.parent_ids[parent], "Type": kind}

    def sample_org(self) -> SampleOrg:
        """The organization as `sample_org.build_organization` describes one (small orgs only)."""
        return SampleOrg(
            org_id=self.org_id,
            root_id=self.root_id,
            management_account_id=self.management_account_id,
            org_role_arn=self.org_role_arn,
            member_role_name=MEMBER_ROLE_NAME,
            ous={self.parent_ids[p]: self.parent_paths[p] for p in range(1, len(self.parent_ids))},
            accounts=[
                SampleAccount(
                    id=self.account_id(i),
                    name=self.name(i),
                    email=self.email(i),
                    path=self.parent_paths[self.account_parent[i]],
                    tags=self.tags(self.account_id(i)),
                    suspended=i in self.suspended,
                    parent_id=self.parent_ids[self.account_parent[i]],
                )
                for i in range(self.size)
            ],
        )


def generate(spec: OrgSpec, number: int = 0) -> ScaleOrg:
    """The organization `sample_org.build_organization(spec)` builds, drawn the same way.

    `number` places it in a simulator of several: organization 0 is the one moto builds
    (management account 123456789012); organization k > 0 has management account
    OTHER_MANAGEMENT + k, members from FIRST_ACCOUNT_ID + k * ORG_STRIDE and ids of its own.
    """
    if not 0 <= number < 90 or spec.accounts > ORG_STRIDE:
        raise ValueError("a simulator holds organizations 0 to 89 of at most 10^9 accounts each")
    ids = random.Random(f"ids:{spec.seed}" + (f":{number}" if number else ""))
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    suffix = "".join(ids.choice(alphabet) for _ in range(4))
    org_id = "o-" + "".join(ids.choice(alphabet) for _ in range(10))
    root_id = f"r-{suffix}"
    parent_ids, parent_paths, parent_of_parent = [root_id], [ROOT_NAME], [-1]
    level = [0]
    for depth in range(spec.depth):  # breadth first, like sample_org._create_ou_tree
        names = OU_NAMES_BY_LEVEL[min(depth, len(OU_NAMES_BY_LEVEL) - 1)]
        next_level = []
        for parent in level:
            for i in range(spec.branching):
                next_level.append(len(parent_ids))
                parent_ids.append(f"ou-{suffix}-{len(parent_ids):08x}")
                parent_paths.append(f"{parent_paths[parent]}/{_ou_name(names, i)}")
                parent_of_parent.append(parent)
        level = next_level
    ou_children: list[list[int]] = [[] for _ in parent_ids]
    for child, parent in enumerate(parent_of_parent):
        if parent >= 0:
            ou_children[parent].append(child)

    rng = random.Random(spec.seed)  # the draws below are build_organization's, in its order
    index_of_id = {pid: i for i, pid in enumerate(parent_ids)}
    parents = _spread_over(parent_ids[1:], root_id, spec.accounts, rng)
    account_parent = array("i", (index_of_id[p] for p in parents))
    del parents
    excluded = frozenset(rng.sample(range(spec.accounts), spec.excluded))
    suspended = frozenset(rng.sample(sorted(set(range(spec.accounts)) - excluded), spec.suspended))
    tag_keys: tuple[str, ...] = ()
    tag_values: list[tuple[str, ...]] = []
    interned: dict[str, str] = {}
    for parent in account_parent:
        tags = _account_tags(parent_paths[parent], spec.tags_per_account, rng)
        tag_keys = tuple(tags)
        tag_values.append(tuple(interned.setdefault(v, v) for v in tags.values()))
    parent_accounts = [array("i") for _ in parent_ids]
    for index, parent in enumerate(account_parent):
        parent_accounts[parent].append(index)
    return ScaleOrg(
        spec=spec,
        org_id=org_id,
        root_id=root_id,
        parent_ids=parent_ids,
        parent_paths=parent_paths,
        parent_of_parent=parent_of_parent,
        ou_children=ou_children,
        account_parent=account_parent,
        parent_accounts=parent_accounts,
        tag_keys=tag_keys or TAG_KEYS[: spec.tags_per_account],
        tag_values=tag_values,
        excluded=excluded,
        suspended=suspended,
        management_account_id=str(OTHER_MANAGEMENT + number) if number else MANAGEMENT_ACCOUNT_ID,
        first_account_id=FIRST_ACCOUNT_ID + number * ORG_STRIDE,
    )


# ---- pagination ------------------------------------------------------------------------------


def page(items: list[Any], params: dict[str, Any], scope: str) -> tuple[list[Any], str | None]:
    """One page of `items` and the token of the next, as AWS pages: at most 20, opaque token."""
    limit = params.get("MaxResults", PAGE_LIMIT)
    if not isinstance(limit, int) or not 1 <= limit <= PAGE_LIMIT:
        raise _invalid(f"MaxResults must be between 1 and {PAGE_LIMIT}")
    start = _offset(params.get("NextToken"), scope)
    end = start + limit
    token = _token(end, scope) if end < len(items) else None
    return items[start:end], token


def _token(offset: int, scope: str) -> str:
    return base64.urlsafe_b64encode(f"{scope}|{offset}".encode()).decode()


def _offset(token: str | None, scope: str) -> int:
    if not token:
        return 0
    try:
        token_scope, _, offset = base64.urlsafe_b64decode(token.encode()).decode().rpartition("|")
        if token_scope == scope:
            return int(offset)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise _invalid("The NextToken is not valid for this request.")


# ---- Organizations ---------------------------------------------------------------------------


class Organizations:
    def __init__(self, org: ScaleOrg) -> None:
        self.org = org

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, operation, None)
        if handler is None or not operation[:1].isupper():
            raise AwsError(400, "UnknownOperationException", f"{operation} is not simulated")
        result: dict[str, Any] = handler(params)
        return result

    def _account_index(self, account_id: object, code: str = "AccountNotFoundException") -> int:
        index = self.org.index_of(str(account_id or ""))
        if index is None:
            raise AwsError(400, code, f"You specified an account that doesn't exist: {account_id}")
        return index

    def _parent(self, parent_id: object) -> int:
        parent = self.org.parent_index(str(parent_id or ""))
        if parent is None:
            raise AwsError(
                400, "ParentNotFoundException", "We can't find a root or OU with that ID."
            )
        return parent

    def DescribeOrganization(self, params: dict[str, Any]) -> dict[str, Any]:
        org, management = self.org, self.org.management_account_id
        return {
            "Organization": {
                "Id": org.org_id,
                "Arn": f"arn:aws:organizations::{management}:organization/{org.org_id}",
                "FeatureSet": "ALL",
                "MasterAccountArn": org.arn("account", management),
                "MasterAccountId": management,
                "MasterAccountEmail": org.email(MANAGEMENT),
                "AvailablePolicyTypes": [{"Type": "SERVICE_CONTROL_POLICY", "Status": "ENABLED"}],
            }
        }

    def ListRoots(self, params: dict[str, Any]) -> dict[str, Any]:
        root = {
            "Id": self.org.root_id,
            "Arn": self.org.arn("root", self.org.root_id),
            "Name": ROOT_NAME,
            "PolicyTypes": [],
        }
        roots, token = page([root], params, "roots")
        return _with_token({"Roots": roots}, token)

    def ListOrganizationalUnitsForParent(self, params: dict[str, Any]) -> dict[str, Any]:
        parent = self._parent(params.get("ParentId"))
        children, token = page(self.org.ou_children[parent], params, f"ous:{parent}")
        return _with_token({"OrganizationalUnits": [self.org.ou(c) for c in children]}, token)

    def ListAccountsForParent(self, params: dict[str, Any]) -> dict[str, Any]:
        parent = self._parent(params.get("ParentId"))
        indexes, token = page(self.org.accounts_of(parent), params, f"accounts:{parent}")
        return _with_token({"Accounts": [self.org.account(i) for i in indexes]}, token)

    def ListAccounts(self, params: dict[str, Any]) -> dict[str, Any]:
        everyone = [MANAGEMENT, *range(self.org.size)]
        indexes, token = page(everyone, params, "accounts")
        return _with_token({"Accounts": [self.org.account(i) for i in indexes]}, token)

    def DescribeAccount(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"Account": self.org.account(self._account_index(params.get("AccountId")))}

    def DescribeOrganizationalUnit(self, params: dict[str, Any]) -> dict[str, Any]:
        parent = self.org.parent_index(str(params.get("OrganizationalUnitId") or ""))
        if not parent:  # unknown, or the root, which is not an OU
            raise AwsError(
                400, "OrganizationalUnitNotFoundException", "We can't find an OU with that ID."
            )
        return {"OrganizationalUnit": self.org.ou(parent)}

    def ListParents(self, params: dict[str, Any]) -> dict[str, Any]:
        child = str(params.get("ChildId") or "")
        ou = self.org.parent_index(child)
        if ou is not None:
            above = self.org.parent_of_parent[ou]
            parents = [] if above < 0 else [self.org.parent_ref(above)]
        else:
            index = self._account_index(child, "ChildNotFoundException")
            parents = [self.org.parent_ref(self.org.parent(index))]
        found, token = page(parents, params, f"parents:{child}")
        return _with_token({"Parents": found}, token)

    def _resource(self, resource_id: object) -> str:
        resource = str(resource_id or "")
        if self.org.parent_index(resource) is None and self.org.index_of(resource) is None:
            raise AwsError(
                400, "TargetNotFoundException", "You specified a target that doesn't exist."
            )
        return resource

    def ListTagsForResource(self, params: dict[str, Any]) -> dict[str, Any]:
        resource = self._resource(params.get("ResourceId"))
        tags = [{"Key": k, "Value": v} for k, v in self.org.tags(resource).items()]
        found, token = page(tags, {"NextToken": params.get("NextToken")}, f"tags:{resource}")
        return _with_token({"Tags": found}, token)

    def TagResource(self, params: dict[str, Any]) -> dict[str, Any]:
        resource = self._resource(params.get("ResourceId"))
        to_set = {t["Key"]: t.get("Value", "") for t in params.get("Tags") or []}
        self.org.edit_tags(resource, to_set, [])
        return {}

    def UntagResource(self, params: dict[str, Any]) -> dict[str, Any]:
        resource = self._resource(params.get("ResourceId"))
        self.org.edit_tags(resource, {}, list(params.get("TagKeys") or []))
        return {}


def _with_token(result: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token:
        result["NextToken"] = token
    return result


# ---- STS and IAM (query protocol) -----------------------------------------------------------

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"


def assume_role(form: dict[str, str]) -> str:
    role_arn = form.get("RoleArn", "")
    arn_fields = role_arn.split(":")
    if len(arn_fields) < 6 or not arn_fields[5].startswith("role/"):
        raise AwsError(400, "ValidationError", f"{role_arn!r} is not a role ARN")
    account, role = arn_fields[4], arn_fields[5].rsplit("/", 1)[-1]
    session = form.get("RoleSessionName", "")
    duration = int(form.get("DurationSeconds") or 3600)
    assumed_arn = f"arn:aws:sts::{account}:assumed-role/{role}/{session}"
    # the session token carries the identity, so GetCallerIdentity needs no state
    token = base64.b64encode(json.dumps({"arn": assumed_arn}).encode()).decode()
    expires = datetime.now(UTC) + timedelta(seconds=duration)
    key = "ASIA" + uuid.uuid4().hex[:16].upper()
    return (
        "<AssumeRoleResult><Credentials>"
        f"<AccessKeyId>{key}</AccessKeyId>"
        f"<SecretAccessKey>{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}</SecretAccessKey>"
        f"<SessionToken>{token}</SessionToken>"
        f"<Expiration>{expires.strftime('%Y-%m-%dT%H:%M:%SZ')}</Expiration>"
        "</Credentials><AssumedRoleUser>"
        f"<AssumedRoleId>AROA{account}:{escape(session)}</AssumedRoleId>"
        f"<Arn>{escape(assumed_arn)}</Arn>"
        "</AssumedRoleUser><PackedPolicySize>6</PackedPolicySize></AssumeRoleResult>"
    )


def caller_arn(session_token: str | None) -> str:
    """Who calls: the role a session token of ours was issued for, else the service's user."""
    arn = f"arn:aws:iam::{MANAGEMENT_ACCOUNT_ID}:user/moto"
    if session_token:
        with contextlib.suppress(ValueError, KeyError, TypeError, binascii.Error):
            arn = str(json.loads(base64.b64decode(session_token))["arn"])
    return arn


def caller_identity(session_token: str | None) -> str:
    arn = caller_arn(session_token)
    account = arn.split(":")[4]
    return (
        "<GetCallerIdentityResult>"
        f"<UserId>AIDA{account}</UserId><Account>{account}</Account><Arn>{escape(arn)}</Arn>"
        "</GetCallerIdentityResult>"
    )


def simulate_principal_policy(form: dict[str, str]) -> str:
    """Every action allowed: the sample organization role may read the whole organization."""
    actions = [
        v for k, v in sorted(form.items(), key=_member_order) if k.startswith("ActionNames.")
    ]
    members = "".join(
        f"<member><EvalActionName>{escape(a)}</EvalActionName><EvalResourceName>*"
        "</EvalResourceName><EvalDecision>allowed</EvalDecision><MatchedStatements/>"
        "<MissingContextValues/></member>"
        for a in actions
    )
    return (
        "<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated>"
        f"<EvaluationResults>{members}</EvaluationResults></SimulatePrincipalPolicyResult>"
    )


def _member_order(item: tuple[str, str]) -> tuple[str, int]:
    prefix, _, n = item[0].rpartition(".")
    return prefix, int(n) if n.isdigit() else 0


QUERY_OPERATIONS: dict[str, tuple[str, Callable[..., str]]] = {
    "AssumeRole": (STS_NS, assume_role),
    "SimulatePrincipalPolicy": (IAM_NS, simulate_principal_policy),
}


# ---- the HTTP server -------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: boto3 reuses its connections
    # headers and body leave in one write with TCP_NODELAY: otherwise Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every response on a kept-alive connection
    disable_nagle_algorithm = True
    server: ScaleServer
    _headers_buffer: list[bytes]  # http.server's, set by send_header(); typeshed omits it

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown everything at thousands of calls

    def do_GET(self) -> None:
        self._control(b"")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/_sim/") or self.path.startswith("/moto-api/"):
            self._control(body)
            return
        target = self.headers.get("X-Amz-Target")
        if target:
            self._organizations(target.rsplit(".", 1)[-1], body)
        else:
            self._query(dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"))))

    def _fault(self, call: AwsCall, org: int, organizations_api: bool) -> Fault | None:
        """The global faults first, then the throttle of the organization the call is for."""
        latency_s, fault = self.server.faults.decide(call)
        if call.operation is None:
            throttled = False
        else:
            decision = self.server.directory.decide(
                org, call.operation, call.caller_account, organizations_api
            )
            latency_s, throttled = latency_s + decision.extra_latency_s, decision.throttled
        if latency_s:
            time.sleep(latency_s)
        if fault is None and throttled:
            return Fault(400, "Throttling", "Rate exceeded")
        return fault

    def _organizations(self, operation: str, body: bytes) -> None:
        caller = caller_arn(self.headers.get("X-Amz-Security-Token")).split(":")[4]
        org = self.server.directory.route(caller)
        fault = self._fault(AwsCall(operation, caller_account=caller), org, True)
        if fault is not None:
            code = "TooManyRequestsException" if fault.code == "Throttling" else fault.code
            message = _JSON_MESSAGES.get(fault.code, fault.message)
            self._json_error(AwsError(fault.status, code, message))
            return
        try:
            params = json.loads(body or b"{}")
            result = self.server.organizations[org].call(operation, params)
        except AwsError as error:
            self._json_error(error)
            return
        except (ValueError, TypeError, KeyError) as error:
            self._json_error(AwsError(400, "InvalidInputException", str(error)))
            return
        self._send(200, json.dumps(result).encode(), "application/x-amz-json-1.1")

    def _json_error(self, error: AwsError) -> None:
        body = json.dumps({"__type": error.code, "Message": error.message}).encode()
        self._send(error.status, body, "application/x-amz-json-1.1")

    def _query(self, form: dict[str, str]) -> None:
        operation = form.get("Action", "")
        target = None
        if operation == "AssumeRole":
            arn_fields = form.get("RoleArn", "").split(":")
            target = arn_fields[4] if len(arn_fields) > 4 else ""
        token = self.headers.get("X-Amz-Security-Token")
        caller = caller_arn(token).split(":")[4] if token else DEFAULT_CALLER_ACCOUNT
        call = AwsCall(operation or None, target, form.get("RoleArn", ""), caller)
        # base credentials belong to no organization: theirs is the assumed role's
        org = self.server.directory.route(caller if token else None, target)
        fault = self._fault(call, org, False)
        if fault is not None:
            self._xml_error(AwsError(fault.status, fault.code, fault.message), fault.sender)
            return
        try:
            if operation == "GetCallerIdentity":
                namespace = STS_NS
                result = caller_identity(self.headers.get("X-Amz-Security-Token"))
            elif operation in QUERY_OPERATIONS:
                namespace, handler = QUERY_OPERATIONS[operation]
                result = handler(form)
            else:
                raise AwsError(400, "InvalidAction", f"{operation!r} is not simulated")
        except AwsError as error:
            self._xml_error(error, True)
            return
        except ValueError as error:
            self._xml_error(AwsError(400, "ValidationError", str(error)), True)
            return
        xml = (
            f'<{operation}Response xmlns="{namespace}">{result}<ResponseMetadata>'
            f"<RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></{operation}Response>"
        )
        self._send(200, xml.encode(), "text/xml")

    def _xml_error(self, error: AwsError, sender: bool) -> None:
        xml = (
            f"<ErrorResponse><Error><Type>{'Sender' if sender else 'Receiver'}</Type>"
            f"<Code>{error.code}</Code><Message>{escape(error.message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        )
        self._send(error.status, xml.encode(), "text/xml")

    def _control(self, body: bytes) -> None:
        try:
            result = self.server.control(self.command, self.path, body)
        except ValueError as error:
            self._send(400, json.dumps({"error": str(error)}).encode(), "application/json")
            return
        if result is None:
            message = {"error": f"no route {self.command} {self.path}"}
            self._send(404, json.dumps(message).encode(), "application/json")
            return
        self._send(200, json.dumps(result).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self._headers_buffer.append(b"\r\n" + body)  # end_headers() without its own write
        self.flush_headers()


class ScaleServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # hundreds of clients may connect at once

    def __init__(
        self, address: tuple[str, int], orgs: Sequence[ScaleOrg], faults: FaultState
    ) -> None:
        super().__init__(address, Handler)
        self.orgs = list(orgs)
        self.organizations = [Organizations(org) for org in self.orgs]
        self.directory = Directory(self.orgs)
        self.faults = faults

    def control(self, method: str, path: str, body: bytes) -> Any:
        """The `/_sim/` control plane of `simulated_aws`, plus the organizations' own routes:
        `GET /_sim/org` (the first), `GET /_sim/orgs`, `GET|POST /_sim/orgs/<management>`
        (its `rates` and `extra_latency_ms`), `GET /_sim/orgs/<management>/accounts` (every
        account as it stands, in one answer), `POST /_sim/tags` and `POST /_sim/accounts` (an
        account renamed or moved)."""
        if (method, path) == ("GET", "/_sim/org"):
            return summary(self.orgs[0])
        if (method, path) == ("GET", "/_sim/orgs"):
            return [self._org_state(i) for i in range(len(self.orgs))]
        if path.startswith("/_sim/orgs/") and path.endswith("/accounts") and method == "GET":
            index = self.directory.by_management(path.split("/")[3])
            return accounts(self.orgs[index])
        if path.startswith("/_sim/orgs/") and method in ("GET", "POST"):
            index = self.directory.by_management(path.removeprefix("/_sim/orgs/"))
            if method == "POST":
                self.directory.configure(index, _json_object(body))
            return self._org_state(index)
        if (method, path) == ("POST", "/_sim/tags"):
            return self._tag(_json_object(body))
        if (method, path) == ("POST", "/_sim/accounts"):
            return self._edit(_json_object(body))
        if (method, path) == ("POST", "/_sim/reset-faults"):
            self.directory.reset()
        if (method, path) == ("POST", "/_sim/reset-counts"):
            self.directory.reset_counts()
        if (result := fault_control(self.faults, method, path, body)) is not None:
            return result
        if method == "POST" and path.startswith("/moto-api/"):
            return {}  # seed and reset: this organization is fixed by its spec
        return None

    def _org_state(self, index: int) -> dict[str, Any]:
        return {**summary(self.orgs[index]), **self.directory.state(index)}

    def _tag(self, change: dict[str, Any]) -> dict[str, Any]:
        account_id = str(change.get("account_id") or "")
        to_set, to_remove = change.get("set") or {}, change.get("remove") or []
        if not isinstance(to_set, dict) or not isinstance(to_remove, list):
            raise ValueError("set must map keys to values and remove be a list of keys")
        index = self.directory.index_of(account_id)
        if index is None:
            raise ValueError(f"no organization holds account {account_id!r}")
        org = self.orgs[index]
        org.edit_tags(account_id, {str(k): str(v) for k, v in to_set.items()}, to_remove)
        return {"management_account_id": org.management_account_id, "tags": org.tags(account_id)}

    def _edit(self, change: dict[str, Any]) -> dict[str, Any]:
        account_id = str(change.get("account_id") or "")
        index = self.directory.index_of(account_id)
        if index is None:
            raise ValueError(f"no organization holds account {account_id!r}")
        org = self.orgs[index]
        member = org.index_of(account_id)
        assert member is not None
        name, parent_id = change.get("name"), change.get("parent_id")
        org.edit_account(
            member,
            None if name is None else str(name),
            None if parent_id is None else str(parent_id),
        )
        return {"name": org.name(member), "path": org.parent_paths[org.parent(member)]}


def summary(org: ScaleOrg) -> dict[str, Any]:
    """An organization's ids, roles and size, as `GET /_sim/org` describes it."""
    return {
        "org_id": org.org_id,
        "root_id": org.root_id,
        "management_account_id": org.management_account_id,
        "org_role_arn": org.org_role_arn,
        "member_role_name": MEMBER_ROLE_NAME,
        "accounts": org.size,
        "ous": len(org.parent_ids) - 1,
        "suspended": len(org.suspended),
        "excluded": len(org.excluded),
    }


def accounts(org: ScaleOrg) -> list[dict[str, Any]]:
    """Every account of the organization, the management account first, with its tags now:
    what a benchmark compares the inventory with, without paying a call per account."""
    return [
        {
            "id": org.account_id(i),
            "name": org.name(i),
            "path": org.parent_paths[org.parent(i)],
            "state": "SUSPENDED" if i in org.suspended else "ACTIVE",
            "tags": org.tags(org.account_id(i)),
        }
        for i in (MANAGEMENT, *range(org.size))
    ]


def _json_object(body: bytes) -> dict[str, Any]:
    value = json.loads(body or b"{}")
    if not isinstance(value, dict):
        raise ValueError("body must be a JSON object")
    return value


class ScaleAws(ServedInThread):
    """The simulator on 127.0.0.1, served from a background thread; a context manager.

    `spec` is the first organization (the one `sample_org` builds in moto); `others` are
    organizations 1, 2, ... of their own management accounts (see `generate`)."""

    def __init__(
        self,
        spec: OrgSpec,
        port: int = 0,
        faults: FaultState | None = None,
        others: Sequence[OrgSpec] = (),
    ) -> None:
        self.orgs = [generate(s, number) for number, s in enumerate([spec, *others])]
        self.org = self.orgs[0]
        self.faults = faults or FaultState()
        self.port = port
        self.endpoint_url = ""

    @property
    def directory(self) -> Directory:
        return cast(ScaleServer, self._server).directory

    def start(self) -> str:
        self._server = ScaleServer(("127.0.0.1", self.port), self.orgs, self.faults)
        return self.serve_in_thread("scale-aws")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a generated AWS organization of any size.")
    defaults = OrgSpec()
    for name in ORG_SPEC_FIELDS:
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name)
        )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    add_rate_arguments(parser)
    parser.add_argument(
        "--org",
        type=org_spec,
        action="append",
        default=[],
        metavar="accounts=N[,depth=N,branching=N,...]",
        help="another organization, of management account 20000000000k for the k-th --org;"
        f" OrgSpec's {', '.join(ORG_SPEC_FIELDS)} and seed, each defaulting to OrgSpec's",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    args = parser.parse_args(argv)
    spec = OrgSpec(
        accounts=args.accounts,
        depth=args.depth,
        branching=args.branching,
        suspended=args.suspended,
        excluded=args.excluded,
        tags_per_account=args.tags_per_account,
        seed=args.seed,
    )
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with ScaleAws(spec, port=args.port, others=args.org) as aws:
        aws.faults.update(latency_ms=args.latency_ms, rates=rates_from_args(args))
        if args.port_file:
            _write_port_file(args.port_file, aws.port)
        print(f"scale AWS listening on {aws.endpoint_url}", flush=True)
        while not stopping.wait(0.5):
            pass
    return 0


def org_spec(text: str) -> OrgSpec:
    """`accounts=50,depth=2,seed=7` (OrgSpec's integer fields) from a command line."""
    fields: dict[str, Any] = {}  # OrgSpec's integers; its excluded_prefix stays the default
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if name not in (*ORG_SPEC_FIELDS, "seed") or not value.strip().lstrip("-").isdigit():
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected NAME=INTEGER, NAME one of {', '.join(ORG_SPEC_FIELDS)}, seed"
            )
        fields[name] = int(value)
    try:
        return OrgSpec(**fields)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None


def describe(endpoint_url: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """What `GET /_sim/org` says: the organization's ids, its roles and its size."""
    with urllib.request.urlopen(f"{endpoint_url.rstrip('/')}/_sim/org", timeout=timeout_s) as r:
        return dict(json.load(r))


if __name__ == "__main__":
    sys.exit(main())
