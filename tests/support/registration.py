"""A registration decided on the test's database, with roles that any STS would let assume
(except those named "Denied…") and an organization two OUs deep."""

from __future__ import annotations

from typing import Any

import psycopg
from botocore.exceptions import ClientError

from orgsync.pipelines import registration
from orgsync.pipelines.credentials import Keyring
from orgsync.pipelines.events import Event
from orgsync.pipelines.registration import RegistrationMessage
from orgsync.pipelines.request_rules import Credentials
from orgsync.pipelines.verdicts import Verdict, decided
from tests.support.stages import outbox_events, stage_deps

Conn = psycopg.Connection[dict[str, Any]]
ORG_BY_ACCOUNT = {"111111111111": "o-firstorg01", "222222222222": "o-secondorg2"}
ORG = "o-firstorg01"
OU_DEEP = "ou-ab12-deepou56"


def arn(account: str = "111111111111", name: str = "OrgReader") -> str:
    return f"arn:aws:iam::{account}:role/{name}"


class Organizations:
    def __init__(self, org_id: str) -> None:
        self.org_id = org_id

    def describe_organization(self) -> dict[str, Any]:
        return {"Organization": {"Id": self.org_id}}

    def list_roots(self, **_: Any) -> dict[str, Any]:
        return {"Roots": [{"Id": "r-ab12"}]}

    def list_organizational_units_for_parent(self, ParentId: str, **_: Any) -> dict[str, Any]:
        ous = {"r-ab12": [{"Id": "ou-ab12-cdefgh34"}], "ou-ab12-cdefgh34": [{"Id": OU_DEEP}]}
        return {"OrganizationalUnits": ous.get(ParentId, [])}


class Iam:
    def simulate_principal_policy(self, **kwargs: Any) -> dict[str, Any]:
        return {
            "EvaluationResults": [
                {"EvalActionName": a, "EvalDecision": "allowed"} for a in kwargs["ActionNames"]
            ]
        }


class Role:
    def __init__(self, org_id: str) -> None:
        self.organizations = Organizations(org_id)
        self.iam = Iam()


class Assume:
    """Any role is assumable, except those whose name starts with "Denied"."""

    def __init__(self) -> None:
        self.assumed: list[str] = []

    def __call__(self, credentials: Credentials, use_external_id: bool) -> Role:
        if not use_external_id:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AssumeRole")
        self.assumed.append(credentials.org_role_arn)
        if credentials.org_role_arn.rsplit("/", 1)[-1].startswith("Denied"):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AssumeRole")
        return Role(ORG_BY_ACCOUNT[credentials.management_account_id])


def credential_fields(role_arn: str = arn(), session: str = "orgsync") -> dict[str, Any]:
    return {
        "org_role_arn": role_arn,
        "org_session_name": session,
        "org_session_duration": 3600,
        "member_role_name": "OrgSyncMember",
        "member_session_name": "orgsync-member",
        "member_session_duration": 900,
    }


def new_request(request_id: str, nickname: str = "first", **fields: Any) -> dict[str, Any]:
    return {"request_id": request_id, "nickname": nickname, **credential_fields(), **fields}


def decide(
    conn: Conn, keyring: Keyring, raw: object, assume: Assume | None = None
) -> tuple[Verdict, list[Event]]:
    """The stage's verdict on `raw` (or on a decoded message) and the events it emitted."""
    message = raw if isinstance(raw, RegistrationMessage) else RegistrationMessage("fb-id", raw)
    before = len(outbox_events(conn))
    deps = stage_deps(conn, keyring, assume_org_role=assume or Assume())
    result = registration.register(deps, message)
    verdict = decided(conn, result.counts["request_id"])
    assert verdict is not None
    return verdict, outbox_events(conn)[before:]


def registered(conn: Conn, keyring: Keyring, nickname: str = "first", **fields: Any) -> str:
    verdict, _ = decide(conn, keyring, new_request(f"new-{nickname}", nickname, **fields))
    assert verdict.accepted, verdict.reasons
    assert verdict.org_id is not None
    return verdict.org_id


def count(conn: Conn, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"])  # type: ignore[index]
