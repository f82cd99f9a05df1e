"""ORGSYNC_BROKER_URL's node list, ORGSYNC_QUEUE_TYPE, and the arguments each queue type gets."""

from __future__ import annotations

import time

import pytest

from orgsync.pipelines.aws_errors import MAX_BACKOFF_SECONDS
from orgsync.services.adapters import nodes, queue_types
from orgsync.services.adapters.nodes import describe, parameters, urls, vhost
from orgsync.services.adapters.queue_migration import plan
from orgsync.services.processes.actors import RETRY
from orgsync.services.settings import Settings, SettingsError

NODES = "amqp://u:secret@10.0.0.1:5672/prod,amqp://u:secret@10.0.0.2:5673/prod"
# RabbitMQ's consumer_timeout (30 min by default): a delivery held unacked longer closes its
# channel, and on a quorum queue each such return counts towards the delivery limit
CONSUMER_TIMEOUT_S = 1800


def test_the_broker_url_takes_one_url_per_node() -> None:
    settings = Settings.from_env({"ORGSYNC_BROKER_URL": NODES.replace(",", " , ")})
    assert urls(settings.broker_url) == NODES.split(",")
    assert describe(settings.broker_url) == "10.0.0.1:5672,10.0.0.2:5673/prod"
    assert vhost(settings.broker_url) == "prod"


def test_every_node_must_name_the_same_vhost_and_no_password_is_shown() -> None:
    with pytest.raises(SettingsError, match="same vhost") as error:
        Settings.from_env({"ORGSYNC_BROKER_URL": NODES + ",amqp://u:secret@10.0.0.3/test"})
    assert "secret" not in str(error.value)
    with pytest.raises(SettingsError, match="not a RabbitMQ URL"):
        Settings.from_env({"ORGSYNC_BROKER_URL": NODES + ",http://10.0.0.3/prod"})


def test_the_queue_type_is_quorum_or_classic_and_unset_follows_the_vhost() -> None:
    assert Settings.from_env({}).queue_type is None
    assert Settings.from_env({"ORGSYNC_QUEUE_TYPE": "quorum"}).queue_type == "quorum"
    with pytest.raises(SettingsError, match="expected quorum or classic"):
        Settings.from_env({"ORGSYNC_QUEUE_TYPE": "mirrored"})


def test_each_connection_tries_every_node_with_short_timeouts_unless_the_url_sets_them() -> None:
    nodes = parameters(NODES.replace("/prod,", "/prod?socket_timeout=2,"))
    assert sorted(p.port for p in nodes) == [5672, 5673]
    timeouts = {p.port: (p.socket_timeout, p.stack_timeout) for p in nodes}
    assert timeouts == {5672: (2, 10.0), 5673: (5.0, 10.0)}


def test_a_node_set_aside_is_tried_last_for_a_minute_the_latest_set_aside_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nodes, "_set_aside", {})
    three = parameters(NODES + ",amqp://u:secret@10.0.0.3:5674/prod")
    nodes.set_aside("10.0.0.2", 5673)
    nodes.set_aside("10.0.0.1", 5672)
    assert {tuple(p.port for p in nodes.in_order(three)) for _ in range(20)} == {(5674, 5673, 5672)}
    long_ago = time.monotonic() - nodes.SET_ASIDE_S - 1
    nodes._set_aside.update({node: long_ago for node in nodes._set_aside})
    assert {nodes.in_order(three)[0].port for _ in range(50)} == {5672, 5673, 5674}


def test_quorum_queues_get_a_delivery_limit_that_dead_letters_into_xq() -> None:
    arguments = queue_types.work_arguments("quorum", "q.XQ")
    assert arguments["x-delivery-limit"] == queue_types.DELIVERY_LIMIT == 20
    assert arguments["x-dead-letter-routing-key"] == "q.XQ"
    assert arguments["x-dead-letter-strategy"] == "at-least-once"
    assert "x-delivery-limit" not in queue_types.dead_letter_arguments("quorum")
    classic = queue_types.work_arguments("classic", "q.XQ")
    assert set(classic) == {"x-queue-type", "x-dead-letter-exchange", "x-dead-letter-routing-key"}


def test_no_queue_asks_for_priorities_which_quorum_queues_lack_before_rabbitmq_4() -> None:
    for queue_type in queue_types.TYPES:
        for _name, arguments in plan(queue_type):
            assert arguments["x-queue-type"] == queue_type
            assert "x-max-priority" not in arguments


def test_no_message_is_held_for_its_eta_as_long_as_rabbitmq_waits_for_an_ack() -> None:
    longest = max(MAX_BACKOFF_SECONDS, RETRY["max_backoff"] / 1000)
    assert longest * 4 < CONSUMER_TIMEOUT_S
