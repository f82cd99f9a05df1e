"""What a body taken off a queue must be before any worker thread decodes it: an allow-list.

The broker is a trust boundary: anyone who can publish to RabbitMQ can put any bytes on any
queue, the delay queues (`Q.DQ`) included. dramatiq's worker trusts its envelopes: it evaluates
`options.throws` with `isinstance` (a string there raises TypeError inside the worker thread's
exception handler, and the thread dies), follows `on_success`/`pipe_target` to other actors and
stores `message_id` as it is. So an envelope is accepted only when

- it is at most `MAX_BODY_BYTES` of UTF-8 JSON;
- it is JSON as JSON is: no NaN, Infinity or number past a double (Python's json reads them);
- it satisfies schema/messages/envelope.json: exactly dramatiq's fields, each of its JSON type;
  only the options dramatiq's own middleware writes on a message (the delay's `eta`, and what
  `Retries` records), each of its type and within bounds; a `message_id` of 1 to `MAX_ID`
  printable characters (PostgreSQL text cannot hold NUL, and an id is a primary key);
- an `eta` only on a delay queue, as dramatiq writes it, and at most `MAX_ETA_AHEAD_MS` ahead
  (rules on the queue and on now, which a schema cannot state): dramatiq's consumer holds a
  message with an `eta` unacked in a prefetch slot until then, on whatever queue it came from,
  so two envelopes an hour ahead on a main queue stalled a two-thread worker for that hour;
- it names the queue it came off and that queue's only actor.

Anything else is not run: `services.broker` hands the actor a stand-in whose single argument is
the reason, and the actor records it (`rejected_messages`, or a rejected registration).
"""

from __future__ import annotations

import hashlib
import time
from functools import cache
from typing import Any

from dramatiq.common import dq_name, q_name
from jsonschema import ValidationError
from jsonschema.protocols import Validator

from orgsync.pipelines import numbers
from orgsync.pipelines.schemas import describe, errors, gated, json_type, quote, validator

ENVELOPE: dict[str, Any] = validator("envelope").schema
_FIELDS: list[str] = list(ENVELOPE["properties"])
OPTIONS: list[str] = list(ENVELOPE["properties"]["options"]["properties"])
MAX_BODY_BYTES = 64 * 1024
MAX_ID: int = ENVELOPE["$defs"]["identifier"]["maxLength"]
MAX_TRACEBACK: int = ENVELOPE["properties"]["options"]["properties"]["traceback"]["maxLength"]
# The furthest ahead an `eta` on a delay queue may be. The longest delays orgsync writes are
# the outbox's page retries, at most MAX_BACKOFF_SECONDS (5 minutes, pipelines/aws_errors.py),
# and dramatiq's Retries, at most a minute (RETRY's max_backoff, services/processes/actors.py);
# tests/unit/test_screening.py holds them under this bound. Three times the longest leaves room
# for clocks that disagree, and stays half of RabbitMQ's 30-minute consumer_timeout, past which
# a message held unacked closes its channel.
MAX_ETA_AHEAD_MS = 15 * 60_000
MAX_RETRIES_OPTION: int = ENVELOPE["properties"]["options"]["properties"]["retries"]["maximum"]


@cache
def _identifier() -> Validator:
    return validator("envelope").evolve(schema=ENVELOPE["$defs"]["identifier"])


def identifier_problem(value: object, name: str = "message_id") -> str | None:
    """Why `value` cannot be stored as an identifier (a message or request id); None if it can."""
    found = list(_identifier().iter_errors(value))
    return f"{name} {describe(found[0])}" if found else None


def problem(body: bytes, queue: str, actor: str | None) -> str | None:
    """Why `body`, taken off `queue`, is not an envelope its actor can run; None when it is."""
    if len(body) > MAX_BODY_BYTES:
        return f"the body is {len(body)} bytes, more than the {MAX_BODY_BYTES} accepted"
    try:
        envelope = numbers.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return "the body is not JSON: it is not UTF-8 text"
    except RecursionError:
        return "the body is not JSON that can be read: it is nested too deeply"
    except ValueError as error:
        # a JSONDecodeError's text names a position only, never the document
        return f"the body is not JSON: {str(error)[:200]}"
    if not isinstance(envelope, dict):
        return f"not a dramatiq envelope: the body is a JSON {json_type(envelope)}, not an object"
    if problems := envelope_problems(envelope, queue):
        return "not a dramatiq envelope: " + "; ".join(problems)
    if envelope["queue_name"] != queue:
        return f"the envelope names queue {quote(envelope['queue_name'])}, not {queue}"
    if envelope["actor_name"] != actor:
        return f"no actor {quote(envelope['actor_name'])} consumes {queue} (only {actor})"
    return None


def envelope_problems(envelope: dict[str, Any], queue: str) -> list[str]:
    """Every way `envelope`, taken off `queue`, is not what dramatiq writes: missing and unknown
    fields, each field's type, then its other problems, then the options', as envelope.json
    words them."""
    found = gated(errors("envelope", envelope))
    required = [e for e in found if e.validator == "required"]
    problems = []
    if missing := [name for name in _FIELDS if any(name in e.validator_value for e in required)]:
        missing = [name for name in missing if name not in envelope]
        problems.append(f"missing {', '.join(missing)}")
    if unknown := [quote(name) for name in envelope if name not in _FIELDS]:
        problems.append(f"unknown field(s) {', '.join(unknown)}")
    fields = sorted(
        (e for e in found if len(e.path) == 1 and e.validator != "additionalProperties"),
        key=lambda e: (e.validator != "type", _FIELDS.index(str(e.path[0]))),
    )
    problems += [f"{error.path[0]} {describe(error)}" for error in fields]
    options = envelope.get("options")
    if isinstance(options, dict):
        if unknown := [quote(name) for name in options if name not in OPTIONS]:
            problems.append(
                f"option(s) {', '.join(unknown)} not accepted (only {', '.join(OPTIONS)})"
            )
        problems += [
            f"option {name} {bad}"
            for name in OPTIONS
            if (bad := _option(name, found, options, queue))
        ]
    return problems


def _option(
    name: str, found: list[ValidationError], options: dict[str, Any], queue: str
) -> str | None:
    if mine := [error for error in found if list(error.path) == ["options", name]]:
        return describe(mine[0])
    if name == "eta" and name in options:
        return eta_problem(options[name], queue, time.time() * 1000)
    return None


def eta_problem(eta: float, queue: str, now_ms: float) -> str | None:
    """Why a numeric `eta` cannot be held on `queue` at `now_ms`; None when it can."""
    if queue == q_name(queue):
        return (
            f"is only accepted on the delay queue {dq_name(queue)}, where dramatiq writes it:"
            f" on {queue} it would hold a worker's prefetch slot until then"
        )
    if eta > now_ms + MAX_ETA_AHEAD_MS:
        return f"is more than {MAX_ETA_AHEAD_MS // 60_000} minutes ahead"
    return None


def stand_in(body: bytes, amqp_id: object) -> str:
    """The message id of the stand-in for an unreadable body: the publisher's AMQP message id
    when it is a usable identifier, else a hash of the body, so a redelivery of the same bytes
    is recognised as the same message and recorded once."""
    if isinstance(amqp_id, str) and identifier_problem(amqp_id[:100]) is None:
        return f"unreadable:{amqp_id[:100]}"
    return f"unreadable:{hashlib.sha256(body).hexdigest()[:32]}"
