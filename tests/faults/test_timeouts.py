"""Nothing we do keeps a message unacked near RabbitMQ's 30-minute delivery timeout.

RabbitMQ closes a channel whose delivery stays unacked past `consumer_timeout` (30 minutes by
default) and requeues everything on it, so our longest hold must stay far below: a message
prefetched behind a running one (prefetch = threads: at most one waits per thread), then run
to its time limit; a retry held by the delay-queue consumer until its eta.
"""

from __future__ import annotations

from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import TimeLimit

from orgsync.pipelines import discovery, validation
from orgsync.pipelines.aws_errors import MAX_BACKOFF_SECONDS
from orgsync.services.processes.actors import build
from orgsync.services.settings import Settings

CONSUMER_TIMEOUT_MS = 30 * 60 * 1000
FAR_UNDER = CONSUMER_TIMEOUT_MS * 0.75


def actor_options() -> dict[str, dict[str, int]]:
    """The actors as `orgsync worker` declares them, on dramatiq's StubBroker."""
    broker = build(Settings(), StubBroker())
    default = next(m.time_limit for m in broker.middleware if isinstance(m, TimeLimit))
    return {
        name: {
            "time_limit": a.options.get("time_limit", default),
            "max_backoff": a.options.get("max_backoff", 0),
        }
        for name, a in broker.actors.items()
    }


def test_no_actor_can_hold_a_message_near_the_consumer_timeout() -> None:
    options = actor_options()
    assert set(options) >= {
        "register_organization",
        "discover_accounts",
        "validate_account",
        "harvest_tags",
        "reconcile_badges",
    }
    for name, option in options.items():
        waits_behind_one_then_runs = 2 * option["time_limit"]
        held_for_retry = option["max_backoff"]
        assert waits_behind_one_then_runs < FAR_UNDER, name
        assert held_for_retry < FAR_UNDER, name


def test_our_own_retry_delays_are_minutes_at_most() -> None:
    assert MAX_BACKOFF_SECONDS * 1000 < FAR_UNDER
    worst_validation_delay = max(
        validation.retry_delay_ms(n) for n in range(1, validation.MAX_ATTEMPTS + 1)
    )
    assert worst_validation_delay <= MAX_BACKOFF_SECONDS * 1000
    # a discovery page's own backoff is slept inside the actor, so it counts against its time
    # limit, which the first test bounds
    assert discovery.PAGE_BACKOFF_CAP * (discovery.PAGE_ATTEMPTS - 1) * 1000 < FAR_UNDER
