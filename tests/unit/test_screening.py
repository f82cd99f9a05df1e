"""The allow-list itself (services/adapters/screening.py): what dramatiq writes passes, nothing
else."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name, q_name
from pika import BasicProperties
from pika.spec import Basic

from orgsync.pipelines.aws_errors import MAX_BACKOFF_SECONDS
from orgsync.services.adapters.broker import ScreeningConsumer, unreadable_reason
from orgsync.services.adapters.screening import MAX_ETA_AHEAD_MS, eta_problem, problem
from orgsync.services.processes.actors import RETRY


def retried_envelope(queue: str) -> dramatiq.Message[object]:
    """An envelope as dramatiq's Retries middleware and delayed enqueue leave it on `Q.DQ`."""
    message = dramatiq.Message(
        queue_name=queue,
        actor_name="discover_accounts",
        args=({"org_id": "o-abcdefghij", "sync_id": "x"},),
        kwargs={},
        options={},
    )
    try:
        raise dramatiq.Retry("ThrottlingException: Rate exceeded")
    except dramatiq.Retry:
        options = {
            "retries": 1,
            "traceback": traceback.format_exc(limit=30),
            "requeue_timestamp": int(time.time() * 1000),
        }
    return message.copy(
        queue_name=dq_name(queue), options={**options, "eta": int(time.time() * 1000) + 60_000}
    )


def test_what_dramatiq_itself_writes_on_a_delay_queue_passes() -> None:
    message = retried_envelope("org-registered")
    assert problem(message.encode(), "org-registered.DQ", "discover_accounts") is None


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"throws": "x"}, "option(s) 'throws' not accepted"),
        ({"on_failure": "register_organization"}, "'on_failure'"),
        ({"retry_when": "x"}, "'retry_when'"),
        ({"max_retries": 1_000_000}, "'max_retries'"),
        ({"eta": "soon"}, "option eta must be a number"),
        ({"eta": (time.time() + 86_400) * 1000}, "option eta is more than 15 minutes ahead"),
        ({"eta": None}, "option eta must be a number"),
        ({"eta": True}, "option eta must be a number"),
        ({"retries": -1}, "option retries must be an integer from 0"),
        ({"retries": True}, "option retries must be an integer"),
        ({"traceback": ["x"]}, "option traceback must be text"),
    ],
)
def test_any_other_option_or_value_is_refused_with_its_name(
    options: dict[str, object], words: str
) -> None:
    message = retried_envelope("org-registered").copy(options=options)
    reason = problem(message.encode(), "org-registered.DQ", "discover_accounts")
    assert reason is not None and words in reason


def envelope(queue: str, options: dict[str, object]) -> dict[str, object]:
    return {
        "queue_name": queue,
        "actor_name": "discover_accounts",
        "args": [{"org_id": "o-abcdefghij"}],
        "kwargs": {},
        "options": options,
        "message_id": "m-1",
    }


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.mark.parametrize(
    "eta",
    [lambda: now_ms() + 3_600_000, lambda: now_ms() + 1_000, lambda: now_ms() - 60_000, lambda: 0],
    ids=["an-hour-ahead", "a-second-ahead", "a-minute-ago", "the-epoch"],
)
def test_an_eta_on_a_main_queue_is_refused_whenever_it_is(eta: Callable[[], int]) -> None:
    body = json.dumps(envelope("org-registered", {"eta": eta()})).encode()

    reason = problem(body, "org-registered", "discover_accounts")

    assert reason == (
        "not a dramatiq envelope: option eta is only accepted on the delay queue"
        " org-registered.DQ, where dramatiq writes it: on org-registered it would hold a"
        " worker's prefetch slot until then"
    )


def test_an_eta_on_a_delay_queue_is_accepted_up_to_the_bound_and_refused_past_it() -> None:
    def on_dq(eta: int) -> str | None:
        body = json.dumps(envelope("org-registered.DQ", {"eta": eta})).encode()
        return problem(body, "org-registered.DQ", "discover_accounts")

    assert on_dq(now_ms() + MAX_ETA_AHEAD_MS - 60_000) is None
    assert on_dq(now_ms() - 86_400_000) is None  # late: dramatiq delivers it at once
    assert on_dq(now_ms() + MAX_ETA_AHEAD_MS + 60_000) == (
        "not a dramatiq envelope: option eta is more than 15 minutes ahead"
    )
    assert on_dq(10**300) is not None  # a whole number past any clock


def test_eta_problem_is_a_rule_on_the_queue_and_on_now() -> None:
    assert eta_problem(1_000, "org-registered.DQ", now_ms=0) is None
    assert eta_problem(MAX_ETA_AHEAD_MS, "q.DQ", now_ms=0) is None
    assert eta_problem(MAX_ETA_AHEAD_MS + 1, "q.DQ", now_ms=0) is not None
    assert eta_problem(0, "q", now_ms=0) is not None


def test_every_delay_orgsync_writes_is_well_within_the_eta_bound() -> None:
    # the outbox's page retries and dramatiq's Retries: a delay past the bound would be refused
    assert MAX_BACKOFF_SECONDS * 1000 * 3 <= MAX_ETA_AHEAD_MS
    assert RETRY["max_backoff"] * 3 <= MAX_ETA_AHEAD_MS
    # and the bound stays under RabbitMQ's default 30-minute consumer_timeout
    assert MAX_ETA_AHEAD_MS <= 30 * 60_000 / 2


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("NaN", "the body is not JSON: NaN is not a JSON number"),
        ("Infinity", "the body is not JSON: Infinity is not a JSON number"),
        ("-Infinity", "the body is not JSON: -Infinity is not a JSON number"),
        ("1e999", "the body is not JSON: the number 1e999 is too large for a double"),
    ],
)
def test_an_eta_json_has_not_is_refused_by_name(written: str, words: str) -> None:
    # Python's json reads each of these (1e999 as inf), and a NaN eta passed every bound
    body = json.dumps(envelope("q.DQ", {"eta": 12345})).replace("12345", written).encode()
    assert problem(body, "q.DQ", "discover_accounts") == words


def test_a_number_json_has_not_anywhere_in_the_args_is_refused() -> None:
    body = json.dumps(envelope("q", {})).replace('"o-abcdefghij"', "NaN").encode()
    assert (
        problem(body, "q", "discover_accounts") == "the body is not JSON: NaN is not a JSON number"
    )


def consumer_of(queue: str, deliveries: list[tuple[object, object, bytes]]) -> ScreeningConsumer:
    """Our consumer as dramatiq's ConsumerThread reads it, its deliveries given, unconnected."""
    broker = StubBroker()
    dramatiq.actor(
        lambda raw: None, actor_name="discover_accounts", queue_name=q_name(queue), broker=broker
    )
    consumer = ScreeningConsumer.__new__(ScreeningConsumer)
    consumer.broker, consumer.queue_name, consumer.known_tags = broker, queue, set()
    consumer.logger = logging.getLogger("test")
    consumer.iterator = consumer._screened(iter(deliveries))
    return consumer


def test_the_consumer_hands_dramatiq_a_stand_in_without_eta_for_an_eta_on_a_main_queue() -> None:
    body = json.dumps(envelope("org-registered", {"eta": now_ms() + 3_600_000})).encode()
    delivery = (Basic.Deliver(delivery_tag=7), BasicProperties(message_id="crafted"), body)

    message = next(consumer_of("org-registered", [delivery]))

    # no eta: dramatiq's ConsumerThread puts it on the work queue at once, not the delay queue,
    # the actor records the reason and the message is acked
    assert "eta" not in message.options
    assert message.message_id == "unreadable:crafted"
    reason = unreadable_reason(message.args[0])
    assert reason is not None and "option eta is only accepted on the delay queue" in reason


def test_the_consumer_passes_what_dramatiq_writes_on_a_delay_queue_as_it_is() -> None:
    retried = retried_envelope("org-registered")
    delivery = (Basic.Deliver(delivery_tag=1), BasicProperties(), retried.encode())

    message = next(consumer_of("org-registered.DQ", [delivery]))

    assert message.options["eta"] == retried.options["eta"]
    assert unreadable_reason(message.args[0]) is None
    assert message.message_id == retried.message_id


def test_the_consumer_refuses_an_eta_past_the_bound_on_a_delay_queue() -> None:
    late = envelope("org-registered.DQ", {"eta": now_ms() + 2 * MAX_ETA_AHEAD_MS})
    delivery = (Basic.Deliver(delivery_tag=1), BasicProperties(), json.dumps(late).encode())

    message = next(consumer_of("org-registered.DQ", [delivery]))

    assert "eta" not in message.options
    reason = unreadable_reason(message.args[0])
    assert reason is not None and reason.endswith(
        "option eta is more than 15 minutes ahead (on org-registered.DQ)"
    )
