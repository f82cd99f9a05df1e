"""The door every request passes before any route, session check or parser sees it.

- The body is read here, at most ORGSYNC_WEB_MAX_BODY_BYTES of it: a larger one (declared in
  Content-Length, or sent in chunks) is answered 413 without being read further, so an
  anonymous 100 MB `POST /login` costs what 256 KiB costs. The route then reads the same bytes.
- The path, the query string, every form field and every JSON string hold no NUL (PostgreSQL
  text cannot, and a NUL reaching it was a 500), the path and query no control character at
  all, each query value at most MAX_VALUE characters: 400, as JSON under /api/, else the
  console's error page with the reason.

What each route then reads (numbers, choices, ids) it types and bounds itself, with the same
two kinds of answer.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orgsync.services.web.render import render

MAX_PATH = 2048
MAX_QUERY = 8192
MAX_VALUE = 1000
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
NUL_IN_FORM = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # a textarea's lines are fine
NUL_IN_JSON = re.compile(rb"\\u0000", re.IGNORECASE)


class Refusal(Exception):
    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


def answer(scope: Scope, refusal: Refusal) -> Response:
    """JSON under /api/, else the console's error page; never a bare status."""
    message, status = str(refusal), refusal.status_code
    if str(scope.get("path", "")).startswith("/api/"):
        return JSONResponse({"error": message}, status)
    return render(Request(scope), "error.html", status, message=message)


def check_request_line(scope: Scope) -> None:
    path = str(scope.get("path", ""))
    if len(path) > MAX_PATH or CONTROL.search(path):
        raise Refusal(f"the path must be at most {MAX_PATH} printable characters")
    query = bytes(scope.get("query_string", b""))
    if len(query) > MAX_QUERY:
        raise Refusal(f"the query string must be at most {MAX_QUERY} bytes")
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if CONTROL.search(name) or CONTROL.search(value):
            raise Refusal(f"query parameter {name[:40]!r} holds a control character (NUL, ...)")
        if len(value) > MAX_VALUE:
            raise Refusal(f"query parameter {name[:40]!r} is longer than {MAX_VALUE} characters")


def check_body(content_type: str, body: bytes) -> None:
    if content_type.startswith("application/x-www-form-urlencoded"):
        for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
            if NUL_IN_FORM.search(name) or NUL_IN_FORM.search(value):
                raise Refusal(f"form field {name[:40]!r} holds a control character (NUL, ...)")
    elif NUL_IN_JSON.search(body) or b"\x00" in body:
        raise Refusal("the body must not hold NUL (\\u0000): no stored text can")


class Door:
    """ASGI middleware: the checks above, then the app with the body read."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            check_request_line(scope)
            body = await self.read_body(scope, receive)
            if body is None:  # the client went away
                return
            headers = dict(scope.get("headers", []))
            check_body(headers.get(b"content-type", b"").decode("latin-1").lower(), body)
        except Refusal as refusal:
            await answer(scope, refusal)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)

    async def read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        too_large = Refusal(f"the body is larger than {self.max_body} bytes", 413)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isascii() or not text.isdigit():
                raise Refusal("Content-Length must be a whole number of bytes")
            if int(text) > self.max_body:
                raise too_large
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body:
                raise too_large
            if not message.get("more_body", False):
                return bytes(body)


def replay(body: bytes, receive: Receive) -> Receive:
    """The body once, as a single message; then what the server says (a disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
