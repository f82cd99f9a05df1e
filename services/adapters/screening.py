"""What a body taken off a queue must be before any worker thread decodes it: an allow-list.

The broker is a trust boundary: anyone who can publish to RabbitMQ can put any bytes on any
queue, the delay queues (`Q.DQ`) included. dramatiq's worker trusts its envelopes: it evaluates
`options.throws` with `isinstance` (a string there raises TypeError inside the worker thread's
exception handler, and the thread dies), follows `on_success`/`pipe_target` to other actors and
stores `message_id` as it is. So an envelope is accepted only when

- its fields are exactly dramatiq's (`REQUIRED`, `OPTIONAL`), each of its JSON type;
- its options are only those dramatiq's own middleware writes on a message (`OPTIONS`): the
  delay's `eta`, and what `Retries` records (`retries`, `traceback`, `requeue_timestamp`); each
  of its type and within bounds;
- its `message_id` is 1 to `MAX_ID` printable characters (PostgreSQL text cannot hold NUL, and
  an id is a primary key: its index holds ~2.7 KB at most);
- it names the queue it came off and that queue's only actor.

Anything else is not run: `services.broker` hands the actor a stand-in whose single argument is
the reason, and the actor records it (`rejected_messages`, or a rejected registration).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

MAX_BODY_BYTES = 64 * 1024
MAX_ID = 200
MAX_TRACEBACK = MAX_BODY_BYTES  # what Retries records (30 frames): bounded by the body
MAX_ETA_AHEAD_MS = 3_600_000  # dramatiq's own delays here are retries' backoff, a minute at most
MAX_RETRIES_OPTION = 10_000

# what dramatiq's Message(**fields) takes, with the JSON type each must have
REQUIRED = {
    "queue_name": "string",
    "actor_name": "string",
    "args": "array",
    "kwargs": "object",
    "options": "object",
}
OPTIONAL = {"message_id": "string", "message_timestamp": "integer"}


def _count(upper: int) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        ok = json_type(value) == "integer" and 0 <= value <= upper  # type: ignore[operator]
        return None if ok else f"must be an integer from 0 to {upper}"

    return check


def _eta(value: object) -> str | None:
    if json_type(value) not in ("integer", "number"):
        return "must be a number (milliseconds since the epoch)"
    if value > time.time() * 1000 + MAX_ETA_AHEAD_MS:  # type: ignore[operator]
        return f"is more than {MAX_ETA_AHEAD_MS // 60_000} minutes ahead"
    return None


def _traceback(value: object) -> str | None:
    ok = isinstance(value, str) and len(value) <= MAX_TRACEBACK
    return None if ok else f"must be text of at most {MAX_TRACEBACK} characters"


# the options dramatiq's own middleware sets on a message (broker delay, Retries)
OPTIONS: dict[str, Callable[[object], str | None]] = {
    "eta": _eta,
    "retries": _count(MAX_RETRIES_OPTION),
    "traceback": _traceback,
    "requeue_timestamp": _count(2**53),
}


def identifier_problem(value: object, name: str = "message_id") -> str | None:
    """Why `value` cannot be stored as an identifier (a message or request id); None if it can."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID:
        return f"{name} must be 1 to {MAX_ID} characters"
    if not value.isprintable():
        return f"{name} must be printable (no NUL, control or line-break characters)"
    return None


def problem(body: bytes, queue: str, actor: str | None) -> str | None:
    """Why `body`, taken off `queue`, is not an envelope its actor can run; None when it is."""
    if len(body) > MAX_BODY_BYTES:
        return f"the body is {len(body)} bytes, more than the {MAX_BODY_BYTES} accepted"
    try:
        envelope = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return "the body is not JSON: it is not UTF-8 text"
    except RecursionError:
        return "the body is not JSON that can be read: it is nested too deeply"
    except ValueError as error:
        # a JSONDecodeError's text names a position only, never the document
        return f"the body is not JSON: {str(error)[:200]}"
    if not isinstance(envelope, dict):
        return f"not a dramatiq envelope: the body is a JSON {json_type(envelope)}, not an object"
    if problems := envelope_problems(envelope):
        return "not a dramatiq envelope: " + "; ".join(problems)
    if envelope["queue_name"] != queue:
        return f"the envelope names queue {quote(envelope['queue_name'])}, not {queue}"
    if envelope["actor_name"] != actor:
        return f"no actor {quote(envelope['actor_name'])} consumes {queue} (only {actor})"
    return None


def envelope_problems(envelope: dict[str, Any]) -> list[str]:
    expected = REQUIRED | OPTIONAL
    problems = []
    if missing := [name for name in REQUIRED if name not in envelope]:
        problems.append(f"missing {', '.join(missing)}")
    if unknown := [quote(name) for name in envelope if name not in expected]:
        problems.append(f"unknown field(s) {', '.join(unknown)}")
    problems += [
        f"{name} must be a JSON {kind}, got {json_type(envelope[name])}"
        for name, kind in expected.items()
        if name in envelope and json_type(envelope[name]) != kind
    ]
    if "message_id" in envelope and (bad := identifier_problem(envelope["message_id"])):
        problems.append(bad)
    options = envelope.get("options")
    if isinstance(options, dict):
        if unknown := [quote(name) for name in options if name not in OPTIONS]:
            problems.append(
                f"option(s) {', '.join(unknown)} not accepted (only {', '.join(OPTIONS)})"
            )
        problems += [
            f"option {name} {bad}"
            for name, check in OPTIONS.items()
            if name in options and (bad := check(options[name]))
        ]
    return problems


def stand_in(body: bytes, amqp_id: object) -> str:
    """The message id of the stand-in for an unreadable body: the publisher's AMQP message id
    when it is a usable identifier, else a hash of the body, so a redelivery of the same bytes
    is recognised as the same message and recorded once."""
    if isinstance(amqp_id, str) and identifier_problem(amqp_id[:100]) is None:
        return f"unreadable:{amqp_id[:100]}"
    return f"unreadable:{hashlib.sha256(body).hexdigest()[:32]}"


def json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    names = {float: "number", str: "string", list: "array", dict: "object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def quote(value: object) -> str:
    text = str(value)
    return ascii(text[:40]) + ("..." if len(text) > 40 else "")
