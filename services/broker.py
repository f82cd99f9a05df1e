"""The RabbitMQ broker: dramatiq's, with publisher confirms on every publish."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import dramatiq
import dramatiq.errors
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import CurrentMessage

from services.errors import ServiceUnavailable

HOW_TO_START = (
    "start it (on Debian: rabbitmq-server -detached; with Docker: docker compose up -d rabbitmq) "
    "or point ORGSYNC_BROKER_URL at it"
)


def describe(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5672}/{unquote(parts.path[1:]) or '/'}"


def make_broker(url: str) -> RabbitmqBroker:
    # confirm_delivery: every publish waits for RabbitMQ's confirm and is mandatory, so a
    # message that cannot be stored raises instead of vanishing (dramatiq's default is off).
    broker = RabbitmqBroker(url=url, confirm_delivery=True)
    broker.add_middleware(CurrentMessage())
    return broker


def unavailable(url: str, error: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"RabbitMQ at {describe(url)} is unreachable"
        f" ({str(error) or type(error).__name__}); {HOW_TO_START}"
    )


def publish(broker: RabbitmqBroker, url: str, message: dramatiq.Message[object]) -> None:
    try:
        broker.enqueue(message)
    except dramatiq.errors.ConnectionError as error:
        raise unavailable(url, error) from error
