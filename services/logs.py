"""Structured logs: one JSON line per event, searchable by org id, sync id, account id and stage."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from orgsync.pipelines.redaction import scrub_text

# Never let these reach a log line, whatever a caller passes.
SECRET_KEYS = frozenset(
    {
        "credentials",
        "external_id",
        "secret",
        "secret_key",
        "session_token",
        "token",
        "password",
        "aws_secret_access_key",
        "aws_session_token",
        "keys",
        "key",
    }
)


def scrub(value: Any) -> Any:
    """`value` with ARNs, role names and secret-named items masked, through lists and dicts."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {key: scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item) for item in value]
    return value


def hide_message_bodies(record: logging.LogRecord) -> bool:
    """dramatiq logs whole messages ("Failed to process message register_organization({...})"):
    a registration request holds role and session names. Each message in a record's arguments
    is replaced by its actor and id, before the line is formatted."""
    if isinstance(record.args, tuple) and record.args:
        record.args = tuple(_message_name(arg) for arg in record.args)
    return True


def _message_name(arg: Any) -> Any:
    if all(hasattr(arg, name) for name in ("actor_name", "message_id", "args", "kwargs")):
        return f"{arg.actor_name}(message_id={arg.message_id})"
    return arg


def redact(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    for key in SECRET_KEYS & event.keys():
        event[key] = "[redacted]"
    return {key: scrub(value) for key, value in event.items()}


def configure(level: str = "INFO", fmt: str = "json") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(hide_message_bodies)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # tracebacks as data, without local variables: locals can hold credentials
                structlog.processors.ExceptionRenderer(
                    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
                ),
                redact,  # again: the rendered traceback holds exception texts
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "pika"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
