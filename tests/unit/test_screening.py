"""The allow-list itself (services/adapters/screening.py): what dramatiq writes passes, nothing
else."""

from __future__ import annotations

import time
import traceback

import dramatiq
import pytest
from dramatiq.common import dq_name

from orgsync.services.adapters.screening import problem


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
        ({"eta": (time.time() + 86_400) * 1000}, "option eta is more than 60 minutes ahead"),
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
