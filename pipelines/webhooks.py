"""Webhooks, pure: Standard Webhooks signatures, the retry schedule, and which URLs may receive.

A receiver verifies a delivery with the `standardwebhooks` library and its secret
(`whsec_` and base64): `webhook-signature` is `v1,` and the base64 HMAC-SHA256, under the
secret's bytes, of `<webhook-id>.<webhook-timestamp>.<body>`. The webhook-id is the event's id,
the same on every retry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import random
from urllib.parse import urlsplit

from orgsync.pipelines.outbound import CONTENT_TYPE, EVENT_TYPES

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64  # Standard Webhooks: 24 to 64 bytes
LONGEST_WAIT_S = 3600.0  # between two tries, however many failed
JITTER = 0.2  # each wait is its nominal value, 20 % either way
MAX_URL = 2048

# Link-local ranges hold every cloud's instance metadata service (169.254.169.254, ECS's
# 169.254.170.2); the others are metadata services outside them (AWS's IPv6 one, Alibaba's).
FORBIDDEN_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
)


class SecretError(ValueError):
    pass


def parse_secret(text: str) -> bytes:
    """The key of a Standard Webhooks secret, `whsec_` and the base64 of 24 to 64 bytes."""
    text = text.strip()
    if not text.startswith(SECRET_PREFIX):
        raise SecretError(f"a webhook secret starts with {SECRET_PREFIX} (then base64)")
    try:
        key = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise SecretError(f"what follows {SECRET_PREFIX} is not base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise SecretError(
            f"a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes,"
            f" this one {len(key)}"
        )
    return key


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(random.SystemRandom().randbytes(32)).decode()


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one try: the timestamp is the try's own, the id and body the event's."""
    return {
        "Content-Type": CONTENT_TYPE,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, msg_id, timestamp, body),
    }


def retry_after(attempts: int, first: float, rng: random.Random | None = None) -> float:
    """Seconds before the next try after `attempts` failed ones: `first`, then doubling, at
    most an hour, each with jitter so that many failed deliveries do not come back at once."""
    nominal = min(LONGEST_WAIT_S, first * 2 ** max(0, attempts - 1))
    draw: float = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return float(min(LONGEST_WAIT_S, nominal * draw))


def delivered(status: int | None) -> bool:
    """A 2xx answer delivers; anything else (a redirect too: none is followed) is retried."""
    return status is not None and 200 <= status < 300


def forbidden_address(address: str) -> bool:
    """Whether a webhook may never be sent to this IP address (metadata services)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in FORBIDDEN_NETWORKS)


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook's, or None. A host name is checked again, resolved, at
    every connection (services/adapters/webhook_http.py)."""
    if len(url) > MAX_URL or not url.isprintable():
        return f"a webhook URL is at most {MAX_URL} printable characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        return f"not a URL: {error}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "a webhook URL is http:// or https:// with a host"
    if parts.username is not None or parts.password is not None:
        return "a webhook URL carries no user or password: the signature authenticates"
    if port == 0:
        return "port 0 is not a port"
    try:
        literal = forbidden_address(parts.hostname)
    except ValueError:  # a name, not an address
        literal = parts.hostname.rstrip(".").lower() == "metadata.google.internal"
    if literal:
        return f"{parts.hostname} is a link-local or cloud metadata address"
    return None


def parse_types(text: str | None) -> list[str] | None:
    """`T1,T2` as a list of known event types (None: every type); raises ValueError."""
    if text is None or not text.strip():
        return None
    types = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(unknown)}; choose from {', '.join(EVENT_TYPES)}"
        )
    return sorted(set(types))
