"""Organizations change events (EventBridge → SQS): what a message body says, and the work it needs.

Pure: no I/O. `read` turns an SQS message body into a `ChangeEvent`, or `Unusable` with the
reason (not JSON, not an Organizations CloudTrail event, a failed call, a field missing or of
the wrong shape). `Work` is the smallest thing the event asks for; the event only says where
to look, never what is there now: the feed re-reads AWS before it changes anything.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

SOURCE = "aws.organizations"
DETAIL_TYPES = ("AWS API Call via CloudTrail", "AWS Service Event via CloudTrail")
EVENT_SOURCE = "organizations.amazonaws.com"
MAX_BODY = 256 * 1024  # SQS's own limit on a message
# CloudTrail stamps eventTime when the call is made: one further ahead than clocks drift apart
# is forged, and would become the feed's "last event" for ever
MAX_CLOCK_SKEW = timedelta(minutes=5)

ACCOUNT_ID = re.compile(r"[0-9]{12}")
OU_ID = re.compile(r"ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}")
EVENT_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
ORG_IN_ARN = re.compile(r"arn:[a-z-]+:organizations::[0-9]{12}:[a-z]+/(o-[a-z0-9]{10,32})")


class Work(StrEnum):
    HARVEST = "harvest"  # re-read the account's tags, reconcile its badges
    REDISCOVER = "rediscover"  # re-read the account (state, parents, path, scope), usual rules
    OU_PATHS = "ou_paths"  # re-read the OU's path and the paths of every account below it


# eventName -> the work it needs; every other name is recorded as unknown and deleted
WORK: dict[str, Work] = {
    "TagResource": Work.HARVEST,
    "UntagResource": Work.HARVEST,
    "MoveAccount": Work.REDISCOVER,
    "CreateAccountResult": Work.REDISCOVER,
    "AcceptHandshake": Work.REDISCOVER,
    "InviteAccountToOrganization": Work.REDISCOVER,
    "RemoveAccountFromOrganization": Work.REDISCOVER,
    "LeaveOrganization": Work.REDISCOVER,
    "CloseAccount": Work.REDISCOVER,
    "UpdateOrganizationalUnit": Work.OU_PATHS,
}
# called by the member account itself: recorded in that account, not the management account
CALLED_BY_MEMBER = frozenset({"AcceptHandshake", "LeaveOrganization"})


@dataclass(frozen=True)
class ChangeEvent:
    event_id: str
    name: str
    time: datetime
    work: Work
    target: str  # an account id, or an OU id for OU_PATHS


@dataclass(frozen=True)
class Unusable:
    """A body that asks for nothing: `reason` is recorded; `event_id`/`name`/`time` when known."""

    reason: str
    event_id: str | None = None
    name: str | None = None
    time: datetime | None = None


def read(
    body: str, management_account_id: str, org_id: str, now: datetime | None = None
) -> ChangeEvent | Unusable:
    """The event in an SQS message body, for the queue of organization `org_id`, read at `now`
    (the current time when not given)."""
    if len(body) > MAX_BODY:
        return Unusable(f"body of {len(body)} characters is larger than SQS allows")
    try:
        doc = json.loads(body)
    except RecursionError:
        return Unusable("not an EventBridge event: JSON nested too deeply to read")
    except ValueError as error:
        return Unusable(f"not JSON: {str(error)[:120]}")
    if not isinstance(doc, dict) or not isinstance(doc.get("detail"), dict):
        return Unusable("not an EventBridge event (no detail object)")
    detail: dict[str, Any] = doc["detail"]
    event_id = _text(detail.get("eventID"), EVENT_ID)
    name = detail.get("eventName") if isinstance(detail.get("eventName"), str) else None
    name = name[:64] if name and name.isprintable() else None
    time = _time(detail.get("eventTime"))
    if time is not None and time > (now or datetime.now(UTC)) + MAX_CLOCK_SKEW:
        return Unusable(f"detail.eventTime {time.isoformat()} is in the future", event_id, name)

    def unusable(reason: str) -> Unusable:
        return Unusable(reason, event_id, name, time)

    if doc.get("source") != SOURCE or doc.get("detail-type") not in DETAIL_TYPES:
        return unusable(f"not an Organizations CloudTrail event (source {_q(doc.get('source'))})")
    if detail.get("eventSource") != EVENT_SOURCE:
        return unusable(f"eventSource {_q(detail.get('eventSource'))} is not {EVENT_SOURCE}")
    if event_id is None:
        return unusable("detail.eventID is missing or not an event id")
    if name is None:
        return unusable("detail.eventName is missing")
    if time is None:
        return unusable("detail.eventTime is missing or not an ISO 8601 time")
    if name not in WORK:
        return unusable(f"unknown event {_q(name)}: nothing to do")
    if detail.get("errorCode"):
        return unusable(f"the call failed ({_q(detail['errorCode'])}): nothing changed")
    if (foreign := foreign_org(doc, org_id)) is not None:
        return unusable(f"names organization {foreign}, not {org_id}")
    # EventBridge's `account`; CloudTrail's own `recipientAccountId` where an envelope lacks it
    # (moto's EventBridge does)
    account = doc.get("account") or detail.get("recipientAccountId")
    if name not in CALLED_BY_MEMBER and account != management_account_id:
        return unusable(
            f"recorded in account {_q(account)}, not the management account {management_account_id}"
        )
    target = _target(name, detail)
    if isinstance(target, Unusable):
        return Unusable(target.reason, event_id, name, time)
    return ChangeEvent(event_id, name, time, WORK[name], target)


def foreign_org(doc: dict[str, Any], org_id: str) -> str | None:
    """An organization id other than `org_id` that the event names in an ARN, if any."""
    for found in ORG_IN_ARN.findall(json.dumps(doc)):
        if found != org_id:
            return str(found)
    return None


def _target(name: str, detail: dict[str, Any]) -> str | Unusable:
    params = _object(detail.get("requestParameters"))
    if name in ("TagResource", "UntagResource"):
        resource = params.get("resourceId")
        if isinstance(resource, str) and (OU_ID.fullmatch(resource) or resource.startswith("r-")):
            return Unusable(f"{name} on {_q(resource)}, not an account: no badge follows it")
        return _account(resource, "requestParameters.resourceId")
    if name == "UpdateOrganizationalUnit":
        ou = params.get("organizationalUnitId")
        if isinstance(ou, str) and OU_ID.fullmatch(ou):
            return ou
        return Unusable("requestParameters.organizationalUnitId is missing or not an OU id")
    if name == "CreateAccountResult":
        status = _object(_object(detail.get("serviceEventDetails")).get("createAccountStatus"))
        if status.get("state") != "SUCCEEDED":
            return Unusable(f"account creation {_q(status.get('state'))}: no account to read")
        return _account(status.get("accountId"), "createAccountStatus.accountId")
    if name == "InviteAccountToOrganization":
        target = _object(params.get("target"))
        if target.get("type") != "ACCOUNT":
            return Unusable(f"invitation by {_q(target.get('type'))}: no account id to read")
        return _account(target.get("id"), "requestParameters.target.id")
    if name in CALLED_BY_MEMBER:
        caller = detail.get("recipientAccountId") or _object(detail.get("userIdentity")).get(
            "accountId"
        )
        return _account(caller, "recipientAccountId")
    return _account(params.get("accountId"), "requestParameters.accountId")


def _object(value: object) -> dict[str, Any]:
    """A part of the event that must be an object: anything else (a string where AWS sends an
    object, say) reads as an empty one, so that what is missing from it is the reason given."""
    return value if isinstance(value, dict) else {}


def _account(value: object, where: str) -> str | Unusable:
    if isinstance(value, str) and ACCOUNT_ID.fullmatch(value):
        return value
    return Unusable(f"{where} is missing or not a 12-digit account id")


def _text(value: object, pattern: re.Pattern[str]) -> str | None:
    return value if isinstance(value, str) and pattern.fullmatch(value) else None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _q(value: object) -> str:
    text = str(value)
    return ascii(text[:40]) + ("..." if len(text) > 40 else "")
