"""A real HTTP webhook receiver, as a downstream system writes one: it verifies every request
with the `standardwebhooks` library and keeps what it got; `answers` scripts its status codes."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook

from orgsync.pipelines.webhooks import new_secret


@dataclass
class Received:
    webhook_id: str
    body: bytes
    event: dict[str, Any]
    content_type: str
    at: float


class Receiver:
    """Answers `answers` in order (then 200), after `delay` seconds each; `received` holds
    every verified request, `rejected` every one whose signature did not verify, and
    `cut_short` counts requests whose sender went away before its whole body arrived (killed
    between the headers and the body: nothing was delivered, and the sender got no answer)."""

    def __init__(self, port: int = 0, answers: list[int] | None = None, delay: float = 0.0):
        self.secret = new_secret()
        self.answers = list(answers or [])
        self.delay = delay
        self.received: list[Received] = []
        self.rejected: list[str] = []
        self.cut_short = 0
        self.lock = threading.Lock()
        self.port = port
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:
                    with receiver.lock:
                        receiver.cut_short += 1
                    self.close_connection = True
                    return
                time.sleep(receiver.delay)
                status = receiver.take(body, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def take(self, body: bytes, headers: dict[str, str]) -> int:
        try:
            event = Webhook(self.secret).verify(body, headers)
        except Exception as error:
            with self.lock:
                self.rejected.append(str(error))
            return 400
        with self.lock:
            self.received.append(
                Received(headers["webhook-id"], body, event, headers["content-type"], time.time())
            )
            return self.answers.pop(0) if self.answers else 200

    def ids(self) -> Counter[str]:
        with self.lock:
            return Counter(r.webhook_id for r in self.received)

    def events(self, type_: str | None = None) -> dict[str, dict[str, Any]]:
        """Every distinct event received (by id), of one type or all."""
        with self.lock:
            return {
                r.webhook_id: json.loads(r.body)
                for r in self.received
                if type_ is None or r.event["type"] == type_
            }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def receiving(**options: Any) -> Iterator[Receiver]:
    receiver = Receiver(**options)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
