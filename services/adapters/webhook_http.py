"""POSTing a webhook: one connection per receiver and batch, kept alive between its posts, never
following a redirect, and never reaching a link-local or metadata address.

The host name is resolved at every connection and each address checked before it is dialled
(the check at `webhooks add` sees only the name: DNS can answer differently later).
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from orgsync.pipelines.webhooks import forbidden_address


class ForbiddenAddress(OSError):
    pass


def vetted_connection(address: tuple[str, int], timeout: Any = None, *args: Any) -> socket.socket:
    """`socket.create_connection`, to the first allowed address the name resolves to."""
    host, port = address
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        if forbidden_address(str(sockaddr[0])):
            error = ForbiddenAddress(f"{host} resolves to {sockaddr[0]}, a metadata address")
            continue
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as failed:
            sock.close()
            error = failed
    raise error or OSError(f"{host} does not resolve")


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no answer (refused, timed out, forbidden)
    error: str | None = None


class Poster:
    """Posts to one URL over one kept-alive connection, reopened after any failure."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        kind = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self.connection = kind(parts.hostname or "", parts.port, timeout=timeout)
        self.connection._create_connection = vetted_connection  # type: ignore[attr-defined]

    def post(self, body: bytes, headers: dict[str, str]) -> Answer:
        try:
            self.connection.request("POST", self.path, body=body, headers=headers)
            response = self.connection.getresponse()
            response.read(64 * 1024)  # the answer's body is not kept; reading frees the socket
            if response.will_close or not response.isclosed():  # closed, or too long to read
                self.connection.close()
            return Answer(response.status, None if response.status < 300 else response.reason)
        except (OSError, http.client.HTTPException) as error:
            self.connection.close()
            return Answer(None, f"{type(error).__name__}: {error}"[:300])

    def close(self) -> None:
        self.connection.close()
