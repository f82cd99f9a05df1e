"""Registration through RabbitMQ, from outside: malformed messages are recorded, never dead-
lettered, and a full sync leaks no credential into logs, messages, the database or the CLI."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pika
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orgsync.pipelines.events import REGISTRATION_ACTOR, REGISTRATION_QUEUE
from orgsync.pipelines.request_rules import ALL_FIELDS
from orgsync.services.adapters import db
from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import (
    MANAGEMENT_ACCOUNT_ID,
    OrgSpec,
    aws_client,
    build_organization,
)
from orgsync.services.use_cases import registering
from tests.support.cli import orgsync, register_and_sync, request_for
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
TIMEOUT = 60
MESSAGES = 1_000

# --- generated malformed messages ------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
VALID = {
    "nickname": "prop",
    "org_role_arn": "arn:aws:iam::123456789012:role/OrgSyncReadOnly",
    "org_session_name": "orgsync",
    "org_session_duration": 3600,
    "member_role_name": "OrgSyncMember",
    "member_session_name": "orgsync-member",
    "member_session_duration": 900,
}
# one bad value per field, the kinds users and scripts really send
BAD_VALUES = {
    "nickname": ["", " padded ", "x" * 65, "tab\tname", 7],
    "org_role_arn": [
        "arn:aw:iam::123456789012:role/R",  # the seed's own typo
        "arn:aws:iam::12345678901:role/R",
        "arn:aws:iam::" + "\uff11" * 12 + ":role/R",  # Unicode digits
        "arn:aws:iam::123456789012:role/R\n",
        "arn:aws:s3::123456789012:role/R",
        "arn:aws:iam:us-east-1:123456789012:role/R",
        "arn:aws:iam::123456789012:user/R",
    ],
    "org_session_name": ["a", "has space", "x" * 65, None],
    "org_session_duration": [899, 43201, "3600", 3600.5, True],
    "member_role_name": ["", "bad//path/R", "R" * 65, ["R"]],
    "member_session_name": ["é-accent", "", 12],
    "member_session_duration": [0, -1, 10**12, "900"],
    "external_id": ["x", "has space", "y" * 1225],
    "exclude_prefixes": ["sandbox-", [1], ["a", "a"], [""]],
    "auto_badge": ["true", 1, None],
    "auto_remove_suspended": ["false", 0],
    "limit_ou_ids": ["ou-ab12-cdefgh34", ["ou-x"], ["r-"]],
    "org_id": ["o-short", "O-ABCDEFGHIJ", 5],
}


def one_bad_field() -> st.SearchStrategy[dict[str, Any]]:
    def build(field: str, value: Any, dropped: list[str]) -> dict[str, Any]:
        request: dict[str, Any] = {**VALID, field: value}
        for name in dropped:
            if name != field:
                request.pop(name, None)
        return request

    return st.sampled_from(sorted(BAD_VALUES)).flatmap(
        lambda field: st.builds(
            build,
            st.just(field),
            st.sampled_from(BAD_VALUES[field]),
            st.lists(st.sampled_from(sorted(VALID)), max_size=2),
        )
    )


partial_update = st.lists(st.sampled_from(sorted(VALID)[1:]), min_size=1, max_size=4).map(
    lambda given: {"org_id": "o-abcdefghij", **{name: VALID[name] for name in given}}
)
random_request = st.dictionaries(
    st.sampled_from([*ALL_FIELDS, "unknown", "Nickname", "org_role_arn "]), json_values, max_size=6
)
requests = one_bad_field() | partial_update | random_request | json_values


def envelope(args: list[Any], **changes: Any) -> dict[str, Any]:
    return {
        "queue_name": REGISTRATION_QUEUE,
        "actor_name": REGISTRATION_ACTOR,
        "args": args,
        "kwargs": {},
        "options": {},
        **changes,
    }


def broken_envelope(data: st.DataObject) -> dict[str, Any]:
    full = envelope([dict(VALID)])
    drop = data.draw(st.lists(st.sampled_from(sorted(full)), max_size=3, unique=True))
    changes = data.draw(
        st.dictionaries(
            st.sampled_from([*full, "message_timestamp", "extra"]), json_values, max_size=2
        )
    )
    broken = {k: v for k, v in full.items() if k not in drop} | changes
    if broken == full or (not drop and set(changes) <= {"args", "message_timestamp"}):
        broken["actor_name"] = "no_such_actor"
    return broken


@st.composite
def malformed_bodies(draw: st.DrawFn) -> tuple[str, Any]:
    """(kind, payload): the body is built at publish time, when its unique ids are known."""
    kind = draw(
        st.sampled_from(
            ["request", "request", "request", "not_json", "not_object", "envelope", "args"]
        )
    )
    if kind == "request":
        return kind, draw(requests)
    if kind == "not_json":
        return kind, draw(st.binary(max_size=40).filter(not_json))
    if kind == "not_object":
        return kind, draw(st.lists(json_values, max_size=3) | st.integers() | st.text(max_size=10))
    if kind == "envelope":
        return kind, broken_envelope(draw(st.data()))
    return kind, draw(st.lists(requests, max_size=3).filter(lambda args: len(args) != 1))


def not_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return True
    return False


def body_of(number: int, kind: str, payload: Any) -> bytes:
    if kind == "request":
        if isinstance(payload, dict) and "request_id" not in payload:
            payload = {"request_id": f"prop-{number}", **payload}
        elif isinstance(payload, dict) and str(payload["request_id"]).isalnum():
            # a unique id where the generated one passes the rule, else the message id is used
            payload = {**payload, "request_id": f"prop-{number}"}
        return json.dumps(envelope([payload], message_id=f"prop-msg-{number}")).encode()
    if kind == "not_json":
        return bytes(payload)
    if kind == "args":
        return json.dumps(envelope(payload, message_id=f"prop-msg-{number}")).encode()
    if kind == "envelope" and isinstance(payload.get("message_id"), str):
        payload = {**payload, "message_id": f"prop-msg-{number}"}
    return json.dumps(payload).encode()


def generate(count: int) -> list[bytes]:
    drawn: list[tuple[str, Any]] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(malformed_bodies())
    def collect(example: tuple[str, Any]) -> None:
        drawn.append(example)

    collect()
    return [body_of(n, kind, payload) for n, (kind, payload) in enumerate(drawn)]


def publish_raw(broker_url: str, bodies: list[bytes]) -> None:
    """Publish as an outside system would: plain pika, persistent, confirmed."""
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(REGISTRATION_QUEUE, passive=True)
        for number, body in enumerate(bodies):
            channel.basic_publish(
                "",
                REGISTRATION_QUEUE,
                body,
                pika.BasicProperties(
                    delivery_mode=2, message_id=f"amqp-{uuid.uuid4().hex}-{number}"
                ),
            )
    finally:
        connection.close()


def dead_lettered(broker_url: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        declared = connection.channel().queue_declare(f"{REGISTRATION_QUEUE}.XQ", passive=True)
        return int(declared.method.message_count)
    finally:
        connection.close()


def scalar(settings: Settings, query: str) -> Any:
    with db.connect(settings.database_url) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return next(iter(row.values()))


def test_a_thousand_malformed_requests_are_each_rejected_with_a_reason_and_the_worker_goes_on(
    settings: Settings, house: House, aws: SimulatedAws, worker: Path
) -> None:
    oversized = [b"x" * (64 * 1024 + 1), json.dumps(envelope(["y" * 70_000])).encode()]
    bodies = [*generate(MESSAGES), *oversized]
    assert len(bodies) >= MESSAGES
    registering.wait_verdict(house, submit_probe(house), TIMEOUT)  # the worker is consuming
    before = dead_lettered(settings.broker_url)

    publish_raw(settings.broker_url, bodies)

    expected = len(bodies) + 1
    wait_until(
        lambda: (
            scalar(settings, "SELECT count(*) FROM registrations WHERE decided_at IS NOT NULL")
            >= expected
        ),
        TIMEOUT,
        f"{expected} verdicts",
    )
    with db.connect(settings.database_url) as conn:
        rows = conn.execute("SELECT accepted, reasons FROM registrations").fetchall()
        assert conn.execute("SELECT count(*) AS n FROM organizations").fetchone() == {"n": 0}
        assert conn.execute("SELECT count(*) AS n FROM rejected_messages").fetchone() == {"n": 0}
    assert len(rows) == expected
    assert all(row["accepted"] is False for row in rows)
    assert all(row["reasons"] and all(r["message"] for r in row["reasons"]) for row in rows)
    assert dead_lettered(settings.broker_url) == before

    org = build_organization(aws.endpoint_url, OrgSpec(accounts=3, suspended=0, excluded=0))
    register_and_sync(settings, request_for(org, "after-the-storm"))


def submit_probe(house: House) -> str:
    request_id = f"probe-{uuid.uuid4().hex[:8]}"
    registering.submit(house, {"request_id": request_id})
    return request_id


def test_an_unreadable_body_is_recorded_with_its_reason(
    settings: Settings, aws: SimulatedAws, worker: Path
) -> None:
    publish_raw(
        settings.broker_url,
        [b"{not json", b"[1, 2]", json.dumps({"actor_name": REGISTRATION_ACTOR}).encode()],
    )

    wait_until(lambda: scalar(settings, "SELECT count(*) FROM registrations") >= 3, TIMEOUT, "3")
    rows = orgsync(settings, aws, "registrations", "--json")
    reasons = sorted(r["reasons"][0]["message"] for r in rows)
    assert reasons[0].startswith("not a dramatiq envelope: missing queue_name, args, kwargs")
    assert reasons[1] == "not a dramatiq envelope: the body is a JSON array, not an object"
    assert reasons[2].startswith("the body is not JSON: Expecting property name")


# --- leaks ---------------------------------------------------------------------------------

CANARY_EXTERNAL_ID = "LEAKCANARY-ext-7f3a"
CANARY_PATH = "canary-path-x9"
CANARY_SESSION = "canary-session-q4"


def trace_publishes(rabbitmq_server: tuple[str, Any], broker_url: str) -> tuple[Any, str]:
    """Turn on RabbitMQ's firehose for the test vhost; a queue receives a copy of every publish."""
    vhost = unquote(urlsplit(broker_url).path[1:])
    rabbitmq_server[1]("trace_on", "-p", vhost)
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.rabbitmq.trace", routing_key="publish.#")
    return connection, queue


def traced(connection: Any, queue: str) -> list[tuple[str, bytes]]:
    channel = connection.channel()
    messages = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return messages
        # the firehose's routing key names the exchange; the queue is in its headers
        messages.append((properties.headers["routing_keys"][0], body))


def test_a_full_sync_leaks_no_credential_into_logs_messages_database_or_cli(
    settings: Settings,
    aws: SimulatedAws,
    worker: Path,
    rabbitmq_server: tuple[str, Any],
    database_url: str,
) -> None:
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=4, suspended=1, excluded=0))
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{MANAGEMENT_ACCOUNT_ID}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": CANARY_EXTERNAL_ID}},
            }
        ],
    }
    role_arn = aws_client(aws.endpoint_url, "iam").create_role(
        RoleName="LeakCanaryReader",
        Path=f"/{CANARY_PATH}/",
        AssumeRolePolicyDocument=json.dumps(trust),
    )["Role"]["Arn"]
    assert CANARY_PATH in role_arn
    connection, trace = trace_publishes(rabbitmq_server, settings.broker_url)
    try:
        request = request_for(
            org,
            "canary",
            org_role_arn=role_arn,
            org_session_name=CANARY_SESSION,
            external_id=CANARY_EXTERNAL_ID,
        )
        org_id = register_and_sync(settings, request)
        published = traced(connection, trace)
    finally:
        vhost = unquote(urlsplit(settings.broker_url).path[1:])
        rabbitmq_server[1]("trace_off", "-p", vhost)
        connection.close()

    accounts = orgsync(settings, aws, "accounts", "--org", "canary", "--json")
    assert {a["status"] for a in accounts} == {"ok", "suspended"}  # the canary role worked
    canaries = (CANARY_EXTERNAL_ID, CANARY_PATH, CANARY_SESSION)

    # the messages: only the request itself carries them (which shows the trace sees them)
    requests_sent = [body for key, body in published if key == REGISTRATION_QUEUE]
    assert any(CANARY_EXTERNAL_ID.encode() in body for body in requests_sent)
    stage_messages = [(key, body) for key, body in published if key != REGISTRATION_QUEUE]
    assert {key for key, _ in stage_messages} >= {
        "org-registered",
        "account-discovered",
        "account-validated",
        "tags-harvested",
    }
    for key, body in stage_messages:
        for canary in canaries:
            assert canary.encode() not in body, (key, body)

    # the worker's log
    log = worker.read_text()
    assert org_id in log  # it did log the registration and every stage
    for canary in canaries:
        assert canary not in log

    # a plain-text dump of the whole database: registrations, rejected messages, syncs, ...
    dump = subprocess.run(
        ["pg_dump", "--data-only", psycopg.conninfo.make_conninfo(database_url)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "canary" in dump  # the nickname is there: the dump is the right database
    for canary in canaries:
        assert canary not in dump

    # what the CLI shows
    for args in (("orgs", "--json"), ("registrations", "--json")):
        shown = json.dumps(orgsync(settings, aws, *args))
        for canary in canaries:
            assert canary not in shown
