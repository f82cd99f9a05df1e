"""Organizations change events in the simulated AWS: moto records no CloudTrail, so a change made
here is followed by the event AWS would publish for it, put on moto's EventBridge, whose rule
(the pattern of deploy/aws/events-pattern.json) delivers it to an SQS queue, as in AWS."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from orgsync.pipelines.change_events import DETAIL_TYPES, EVENT_SOURCE, SOURCE, WORK
from orgsync.services.testing.sample_org import MANAGEMENT_ACCOUNT_ID, aws_client

RULE = "orgsync-organization-events"
PATTERN: dict[str, Any] = {
    "source": [SOURCE],
    "detail-type": list(DETAIL_TYPES),
    "detail": {"eventSource": [EVENT_SOURCE], "eventName": sorted(WORK)},
}


def create_feed(endpoint_url: str, queue_name: str = RULE) -> str:
    """The queue and the EventBridge rule delivering Organizations events to it; its URL."""
    sqs = aws_client(endpoint_url, "sqs")
    events = aws_client(endpoint_url, "events")
    url = str(sqs.create_queue(QueueName=queue_name)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    events.put_rule(Name=queue_name, EventPattern=json.dumps(PATTERN), State="ENABLED")
    events.put_targets(Rule=queue_name, Targets=[{"Id": "orgsync", "Arn": arn["QueueArn"]}])
    return url


def cloudtrail_record(
    name: str, request_parameters: dict[str, Any], management: str = MANAGEMENT_ACCOUNT_ID
) -> dict[str, Any]:
    """A CloudTrail record of an Organizations call made now by the management account."""
    return {
        "eventVersion": "1.08",
        "userIdentity": {"type": "AssumedRole", "accountId": management},
        "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "eventSource": EVENT_SOURCE,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.10",
        "userAgent": "orgsync-simulator",
        "requestParameters": request_parameters,
        "responseElements": None,
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": management,
        "eventCategory": "Management",
    }


def publish(endpoint_url: str, records: list[dict[str, Any]], events: Any = None) -> None:
    """Put CloudTrail records on EventBridge as AWS does (10 entries per call at most)."""
    events = events or aws_client(endpoint_url, "events")
    for start in range(0, len(records), 10):
        entries = [
            {
                "Source": SOURCE,
                "DetailType": DETAIL_TYPES[0],
                "Detail": json.dumps(record),
                "Resources": [],
            }
            for record in records[start : start + 10]
        ]
        failed = events.put_events(Entries=entries).get("FailedEntryCount", 0)
        if failed:
            raise RuntimeError(f"EventBridge refused {failed} events")


def tag_account(
    endpoint_url: str,
    account_id: str,
    tags: dict[str, str],
    orgs: Any = None,
    management: str = MANAGEMENT_ACCOUNT_ID,
) -> dict[str, Any]:
    """Tag the account in AWS; returns the CloudTrail record AWS would publish for it."""
    orgs = orgs or aws_client(endpoint_url, "organizations")
    pairs = [{"Key": k, "Value": v} for k, v in tags.items()]
    orgs.tag_resource(ResourceId=account_id, Tags=pairs)
    params = {"resourceId": account_id, "tags": [{"key": k, "value": v} for k, v in tags.items()]}
    return cloudtrail_record("TagResource", params, management)
