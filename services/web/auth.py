"""Who may see the console: the password, the signed session cookie, CSRF and the API token.

The password is ORGSYNC_WEB_PASSWORD, or its scrypt hash in ORGSYNC_WEB_PASSWORD_HASH written
as `scrypt$<n>$<r>$<p>$<salt, base64>$<key, base64>` (`orgsync web --hash-password` makes one).
The session is a cookie signed with itsdangerous: HttpOnly, SameSite=Strict, Secure when the
request came over TLS. It carries the CSRF token that every form posts back.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from orgsync.pipelines import numbers
from orgsync.services.errors import UserError
from orgsync.services.settings import Settings

COOKIE = "orgsync_session"
SESSION_SECONDS = 12 * 3600
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
# the n) failed sign-in from one address waits BASE * 2**(n-1) seconds, at most MAX
FAILED_SIGN_IN_DELAY, FAILED_SIGN_IN_MAX_DELAY = 1.0, 16.0
MAX_TRACKED = 10_000  # addresses with failed sign-ins, and signed-out sessions, kept in memory


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(key).decode()}"


def parse_hash(text: str) -> tuple[int, int, int, bytes, bytes]:
    try:
        scheme, *costs, salt, key = text.split("$")
        n, r, p = (numbers.whole(cost) for cost in costs)
        if scheme != "scrypt" or n is None or r is None or p is None:
            raise ValueError(scheme)
        parsed = n, r, p, base64.b64decode(salt), base64.b64decode(key)
        # costs scrypt refuses (n not a power of 2, more memory than it allows) would fail
        # every sign-in: derived once here, they are refused at start
        hashlib.scrypt(b"", salt=parsed[3], n=n, r=r, p=p, dklen=max(1, len(parsed[4])))
        return parsed
    except (ValueError, TypeError, OverflowError) as error:
        raise UserError(
            "ORGSYNC_WEB_PASSWORD_HASH is not scrypt$<n>$<r>$<p>$<salt>$<key>;"
            " make one with `orgsync web --hash-password`"
        ) from error


@dataclass
class Guard:
    """The console's checks, built once per app from the settings."""

    settings: Settings
    failed_delay: float = FAILED_SIGN_IN_DELAY
    failures: dict[str, int] = field(default_factory=dict)
    # sessions signed out, by CSRF token, until they would have expired anyway
    signed_out: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        settings = self.settings
        if not (settings.web_password or settings.web_password_hash):
            raise UserError(
                "orgsync web needs ORGSYNC_WEB_PASSWORD or ORGSYNC_WEB_PASSWORD_HASH"
                " (make a hash with `orgsync web --hash-password`)"
            )
        self.hashed = parse_hash(settings.web_password_hash) if settings.web_password_hash else None
        secret = settings.web_session_secret or secrets.token_urlsafe(32)
        self.signer = URLSafeTimedSerializer(secret, salt="orgsync-web-session")

    # ---- password ---------------------------------------------------------------------------

    def password_ok(self, given: str) -> bool:
        if self.hashed is None:
            expected = (self.settings.web_password or "").encode()
            return hmac.compare_digest(given.encode(), expected)
        n, r, p, salt, key = self.hashed
        derived = hashlib.scrypt(given.encode(), salt=salt, n=n, r=r, p=p, dklen=len(key))
        return hmac.compare_digest(derived, key)

    async def slow_down(self, request: Request) -> None:
        """Wait longer after each failed sign-in from the same address."""
        client = request.client.host if request.client else "-"
        if len(self.failures) > MAX_TRACKED:  # bounded memory under a spray of addresses
            self.failures.clear()
        self.failures[client] = count = self.failures.get(client, 0) + 1
        await asyncio.sleep(min(self.failed_delay * 2 ** (count - 1), FAILED_SIGN_IN_MAX_DELAY))

    def signed_in(self, request: Request) -> None:
        self.failures.pop(request.client.host if request.client else "-", None)

    # ---- session ----------------------------------------------------------------------------

    def session(self, request: Request) -> dict[str, Any]:
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return {}
        try:
            data = self.signer.loads(cookie, max_age=SESSION_SECONDS)
        except BadSignature:
            return {}
        if not isinstance(data, dict) or data.get("csrf") in self.signed_out:
            return {}
        return data

    def sign_out(self, session: dict[str, Any]) -> None:
        """The cookie is signed, not stored: remember it is void until it expires."""
        now = time.time()
        self.signed_out = {k: t for k, t in self.signed_out.items() if t > now}
        if len(self.signed_out) < MAX_TRACKED:
            self.signed_out[str(session.get("csrf"))] = now + SESSION_SECONDS

    @staticmethod
    def fresh(*, user: bool) -> dict[str, Any]:
        """A new session, with a new CSRF token (a new one at sign-in: no session fixation)."""
        return {"csrf": secrets.token_urlsafe(32), "user": user, "at": int(time.time())}

    def store(self, request: Request, response: Response, session: dict[str, Any]) -> None:
        response.set_cookie(
            COOKIE,
            self.signer.dumps(session),
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.over_tls(request),
        )

    def over_tls(self, request: Request) -> bool:
        if self.settings.web_secure_cookies or request.url.scheme == "https":
            return True
        proxies = {p.strip() for p in self.settings.web_trusted_proxies.split(",")}
        client = request.client.host if request.client else None
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
        return client in proxies and forwarded == "https"

    @staticmethod
    def csrf_ok(session: dict[str, Any], given: object) -> bool:
        expected = session.get("csrf")
        if not isinstance(given, str) or not isinstance(expected, str) or not expected:
            return False
        return hmac.compare_digest(given.encode(), expected.encode())

    # ---- API --------------------------------------------------------------------------------

    def token_ok(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expected = self.settings.api_token
        if not expected or scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode(), expected.encode())


Handler = Callable[[Request], Response]


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A signed-in page: 403 for a form posted without the session's CSRF token, else a
    redirect to /login without a session (401 for a partial refresh). `handler` runs in a
    thread, as it talks to PostgreSQL and RabbitMQ with blocking clients."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        guard: Guard = request.app.state.guard
        session = guard.session(request)
        if request.method == "POST":  # checked first: a post without a session has no token
            form = await request.form()
            if not guard.csrf_ok(session, form.get("csrf_token")):
                return PlainTextResponse("CSRF token missing or wrong", status_code=403)
            request.state.form = form
        if not session.get("user"):
            if request.headers.get("x-refresh"):
                return PlainTextResponse("sign in again", status_code=401)
            if request.method == "POST":  # back to a form's page, never to its action
                return RedirectResponse("/login", status_code=303)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        request.state.session = session
        return await run_in_threadpool(handler, request)

    return endpoint


def api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """An API route: `Authorization: Bearer $ORGSYNC_API_TOKEN`, 401 otherwise."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        guard: Guard = request.app.state.guard
        if not guard.token_ok(request):
            return JSONResponse(
                {"error": "send Authorization: Bearer <ORGSYNC_API_TOKEN>"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        body = await request.body() if request.method == "POST" else b""
        request.state.body = body
        return await run_in_threadpool(handler, request)

    return endpoint
