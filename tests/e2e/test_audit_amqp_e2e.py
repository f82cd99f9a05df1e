"""The audit trail of the `org-registration` queue, published to as an outside system does
(plain AMQP): the actor is the AMQP user_id RabbitMQ checked, `amqp:unknown` without one, and a
claim in the options is recorded beside the broker user that vouched for it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions
import pytest

from orgsync.pipelines import audit
from orgsync.pipelines.events import REGISTRATION_ACTOR, REGISTRATION_QUEUE
from orgsync.services.adapters import db
from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import OrgSpec, build_organization
from orgsync.services.use_cases import registering, syncs
from tests.support.cli import TIMEOUT, request_for

pytestmark = pytest.mark.e2e


def publish(broker_url: str, request: dict[str, Any], user_id: str | None, **options: Any) -> None:
    body = {
        "queue_name": REGISTRATION_QUEUE,
        "actor_name": REGISTRATION_ACTOR,
        "args": [request],
        "kwargs": {},
        "options": options,
        "message_id": f"amqp-{uuid.uuid4().hex}",
    }
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(delivery_mode=2, user_id=user_id)
        channel.basic_publish("", REGISTRATION_QUEUE, json.dumps(body).encode(), properties)
    finally:
        if connection.is_open:
            connection.close()


def test_queued_requests_are_recorded_as_their_checked_broker_user(
    settings: Settings, house: House, aws: SimulatedAws, worker: Path
) -> None:
    user = unquote(urlsplit(settings.broker_url).username or "guest")
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=2, suspended=0, excluded=0))
    probe = {"request_id": f"probe-{uuid.uuid4().hex[:8]}"}  # rejected: leaves no row
    registering.submit(house, probe)  # declares the queue, which a plain publish cannot
    registering.wait_verdict(house, probe["request_id"], TIMEOUT)
    first = request_for(org, "queued")
    publish(settings.broker_url, first, user)
    org_id = registering.wait_verdict(house, first["request_id"], TIMEOUT, first).org_id
    assert org_id is not None
    unnamed = {"request_id": f"u-{uuid.uuid4().hex[:8]}", "org_id": org_id, "auto_badge": False}
    publish(settings.broker_url, unnamed, None, orgsync_broker_user="root")  # forged: dropped
    registering.wait_verdict(house, unnamed["request_id"], TIMEOUT, unnamed)
    claimed = {"request_id": f"c-{uuid.uuid4().hex[:8]}", "org_id": org_id, "nickname": "q2"}
    publish(settings.broker_url, claimed, user, orgsync_actor="user:ops", orgsync_via="console")
    registering.wait_verdict(house, claimed["request_id"], TIMEOUT, claimed)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="user_id"):
        publish(settings.broker_url, claimed, "someone-else")  # RabbitMQ checks the property

    with db.connect(settings.database_url) as conn:
        rows = list(reversed(audit.trail(conn, org_id)))
        started = [r["subject"] for r in audit.trail(conn) if r["action"] == "sync.start"]
        sync_ids = conn.execute("SELECT sync_id::text AS id FROM syncs").fetchall()
    for sync in sync_ids:  # none left running, for the next test's worker on this vhost
        syncs.wait_sync(house, sync["id"], TIMEOUT)
    assert started == []  # a registration's own sync is the registrar's, not a second row
    assert [(r["actor"], r["via"], r["broker_user"], r["subject"]) for r in rows] == [
        (f"amqp:{user}", "amqp", user, first["request_id"]),
        ("amqp:unknown", "amqp", None, unnamed["request_id"]),
        ("user:ops", "console", user, claimed["request_id"]),
    ]
    assert [r["action"] for r in rows] == [
        "organization.register", "organization.update", "organization.update"
    ]  # fmt: skip
