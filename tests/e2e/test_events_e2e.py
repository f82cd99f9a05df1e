"""End to end: a real worker syncs an organization; a webhook receiver added with the command
line gets every change signed, once, and a queue bound to `orgsync.changes` gets the same."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from orgsync.services.adapters import db
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import OrgSpec, build_organization
from orgsync.services.testing.webhook_receiver import Receiver, free_port
from tests.support.amqp import bind_to_changes, drain
from tests.support.cli import orgsync, register_and_sync, request_for
from tests.support.waiting import wait_until
from tests.support.workers import running_worker, worker_env

pytestmark = pytest.mark.e2e
ORGSYNC = (sys.executable, "-m", "orgsync")


@pytest.fixture
def own(settings: Settings, own_broker_url: str) -> Settings:
    """The test's settings on a vhost of its own: its exchange sees no other test's events."""
    return replace(settings, broker_url=own_broker_url)


def add_webhook(settings: Settings, aws: SimulatedAws, receiver: Receiver, tmp: Path) -> str:
    secret_file = tmp / "secret"
    secret_file.write_text(receiver.secret + "\n")
    done = subprocess.run(
        [*ORGSYNC, "webhooks", "add", receiver.url, "--secret-file", str(secret_file)],
        env=worker_env(settings, aws.endpoint_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def stored_event_ids(settings: Settings) -> set[str]:
    with db.connect(settings.database_url, autocommit=True) as conn:
        return {str(r["id"]) for r in conn.execute("SELECT id FROM outbound_events")}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(port=free_port())
    yield made
    made.stop()


def test_a_sync_reaches_a_signed_webhook_and_the_exchange_once_per_change(
    own: Settings, aws: SimulatedAws, receiver: Receiver, tmp_path: Path
) -> None:
    queue = f"downstream-{uuid.uuid4().hex[:6]}"
    bind_to_changes(own.broker_url, queue)
    receiver.start()
    webhook_id = add_webhook(own, aws, receiver, tmp_path)
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=12, suspended=1, excluded=1))
    with running_worker(own, aws.endpoint_url, tmp_path / "worker.log"):
        register_and_sync(own, request_for(org, "events"))
        wait_until(
            lambda: receiver.events("orgsync.sync.completed"), 30, "the sync.completed webhook"
        )
        every = wait_until(
            lambda: (ids := stored_event_ids(own)) == set(receiver.ids()) and ids,
            30,
            "every stored event at the receiver",
        )

    assert not receiver.rejected and set(receiver.ids().values()) == {1}
    listed = orgsync(own, aws, "accounts", "--org", "events", "--json")
    added = [e["subject"] for e in receiver.events("orgsync.account.added").values()]
    assert sorted(added) == sorted(a["account_id"] for a in listed)
    [completed] = receiver.events("orgsync.sync.completed").values()
    assert completed["data"]["mode"] == "full"
    assert completed["data"]["statuses"] == dict(Counter(a["status"] for a in listed))
    badges = receiver.events("orgsync.account.badges_changed").values()
    assert {e["subject"] for e in badges} == set(added)

    published = drain(own.broker_url, queue)
    assert {json.loads(body)["id"] for _, body in published} == every
    assert {body for _, body in published} == {r.body for r in receiver.received}
    hooks = orgsync(own, aws, "webhooks", "list", "--json")
    assert [(h["webhook_id"], h["delivered"], h["pending"]) for h in hooks] == [
        (webhook_id, len(every), 0)
    ]


def test_a_receiver_down_for_the_whole_sync_gets_every_event_once_it_is_back(
    own: Settings, aws: SimulatedAws, receiver: Receiver, tmp_path: Path
) -> None:
    webhook_id = add_webhook(own, aws, receiver, tmp_path)
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=8, suspended=0, excluded=0))
    log = tmp_path / "worker.log"
    with running_worker(own, aws.endpoint_url, log, ORGSYNC_WEBHOOK_FIRST_RETRY="0.5"):
        register_and_sync(own, request_for(org, "down"))
        every = wait_until(
            lambda: (ids := stored_event_ids(own)) and len(ids) > 8 * 3 and ids,
            30,
            "the sync's events",
        )
        tried = orgsync(own, aws, "webhooks", "deliveries", webhook_id, "--json")
        assert tried and all(d["state"] == "pending" for d in tried)
        assert any(d["attempts"] >= 1 and "Connection" in d["last_error"] for d in tried)

        receiver.start()
        wait_until(lambda: set(receiver.ids()) >= every, 60, "every event, once back")

    assert not receiver.rejected
    assert set(receiver.ids()) == stored_event_ids(own)
