"""The SQL migrations and the messages' JSON Schemas, as package data.

A package so that a wheel ships them and an installed orgsync finds them with
importlib.resources, wherever it is installed (not only in a checkout).
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

MIGRATIONS: Traversable = resources.files(__name__) / "migrations"
MESSAGES: Traversable = resources.files(__name__) / "messages"


def message_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of a message, by file stem (e.g. `registration_request`)."""
    document: dict[str, Any] = json.loads((MESSAGES / f"{name}.json").read_text())
    return document


EVENTS: Traversable = resources.files(__name__) / "events"


def event_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of an event for other systems: `cloudevent` (the envelope) or the type
    (`orgsync.account.added`: its `data`)."""
    document: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return document
