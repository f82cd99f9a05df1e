"""Registration requests through the front door: the envelope, publishing it, and its verdict."""

from __future__ import annotations

from typing import Any

import dramatiq

from orgsync.pipelines.audit import By
from orgsync.pipelines.events import REGISTRATION_ACTOR, REGISTRATION_QUEUE
from orgsync.pipelines.idempotency import conflict_id, request_digest, same_request
from orgsync.pipelines.verdicts import Verdict, decided
from orgsync.services.adapters.broker import CLAIMED_ACTOR, CLAIMED_VIA, publish
from orgsync.services.bootstrap import House
from orgsync.services.use_cases.syncs import wait_for


def registration_message(request: dict[str, Any], by: By | None = None) -> dramatiq.Message[Any]:
    """The dramatiq envelope of a request, with a message id derived from its request id and,
    in its options, who asked for it and through which door (the audit trail's actor)."""
    options = {} if by is None else {CLAIMED_ACTOR: str(by.actor), CLAIMED_VIA: by.via}
    return dramatiq.Message(
        queue_name=REGISTRATION_QUEUE,
        actor_name=REGISTRATION_ACTOR,
        args=(request,),
        kwargs={},
        options=options,
        message_id=f"registration:{request['request_id']}",
    )


def submit(house: House, request: dict[str, Any], by: By | None = None) -> None:
    publish(house.broker, house.settings.broker_url, registration_message(request, by))


def wait_verdict(house: House, request_id: str, timeout: float, request: object = None) -> Verdict:
    """The verdict on `request_id`; given the `request` that was sent, the verdict on that
    request: a rejection when the id had been used for another one (pipelines.idempotency)."""
    digest = None if request is None else request_digest(request_id, request)

    def poll() -> Verdict | None:
        with house.connect() as conn:
            verdict = decided(conn, request_id)
            if verdict is None or digest is None or same_request(conn, request_id, digest):
                return verdict
            return decided(conn, conflict_id(request_id, digest))

    return wait_for(
        poll,
        timeout,
        f"no verdict on request {request_id} after {timeout:.0f} s: "
        "is a worker running (`orgsync worker`)?",
    )
