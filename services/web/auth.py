"""Who is asking: the session cookie, CSRF, the bearer tokens, and the role each route needs.

The break-glass password is ORGSYNC_WEB_PASSWORD, or its scrypt hash in
ORGSYNC_WEB_PASSWORD_HASH written as `scrypt$<n>$<r>$<p>$<salt, base64>$<key, base64>`
(`orgsync web --hash-password` makes one). The session is a cookie signed with itsdangerous:
HttpOnly, SameSite=Strict, Secure when the request came over TLS. It carries the CSRF token that
every form posts back, its user (`password` or `oidc:<sub>`) and that user's session version in
PostgreSQL (services/use_cases/sessions.py), checked on every request. The `page` and `api`
decorators put the signed-in Actor on `request.state.actor` and refuse what roles.py's table
does not admit.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from orgsync.pipelines import numbers
from orgsync.pipelines.access import BREAK_GLASS, Actor, Reach, administrator
from orgsync.services.errors import UserError
from orgsync.services.settings import Settings, check_web_secrets
from orgsync.services.use_cases import access, sessions
from orgsync.services.web import roles
from orgsync.services.web.render import render

COOKIE = "orgsync_session"
SESSION_SECONDS = 12 * 3600
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
PASSWORD_USER = "password"  # the break-glass password's user in web_users


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


class Guard:
    """The console's checks, built once per app from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        check_web_secrets(settings)
        oidc = bool(settings.oidc_issuer)
        password = bool(settings.web_password or settings.web_password_hash)
        if not settings.web_password_sign_in:
            password = False
            if not oidc:
                raise UserError(
                    "ORGSYNC_WEB_PASSWORD_SIGN_IN=off needs sign-in through an identity"
                    " provider: set ORGSYNC_OIDC_ISSUER, ORGSYNC_OIDC_CLIENT_ID and"
                    " ORGSYNC_OIDC_CLIENT_SECRET"
                )
        elif not (password or oidc):
            raise UserError(
                "orgsync web needs ORGSYNC_WEB_PASSWORD or ORGSYNC_WEB_PASSWORD_HASH"
                " (make a hash with `orgsync web --hash-password`), or ORGSYNC_OIDC_ISSUER"
            )
        if oidc and not (settings.oidc_client_id and settings.oidc_client_secret):
            raise UserError(
                "ORGSYNC_OIDC_ISSUER needs ORGSYNC_OIDC_CLIENT_ID and ORGSYNC_OIDC_CLIENT_SECRET"
                " (or ORGSYNC_OIDC_CLIENT_SECRET_FILE): the client registered at the provider"
            )
        self.password_sign_in = password
        self.hashed = parse_hash(settings.web_password_hash) if settings.web_password_hash else None
        secret = settings.web_session_secret or secrets.token_urlsafe(32)
        self.secret = secret
        self.signer = URLSafeTimedSerializer(secret, salt="orgsync-web-session")
        # a session signed in with the password names which password: another one (a change,
        # in any process, or after a restart) voids it
        credential = (settings.web_password_hash or settings.web_password or "").encode()
        self.password_mark = hmac.new(secret.encode(), credential, "sha256").hexdigest()[:32]

    # ---- password ---------------------------------------------------------------------------

    def password_ok(self, given: str) -> bool:
        if not self.password_sign_in:
            return False
        if self.hashed is None:
            expected = (self.settings.web_password or "").encode()
            return hmac.compare_digest(given.encode(), expected)
        n, r, p, salt, key = self.hashed
        derived = hashlib.scrypt(given.encode(), salt=salt, n=n, r=r, p=p, dklen=len(key))
        return hmac.compare_digest(derived, key)

    # ---- session ----------------------------------------------------------------------------

    def session(self, request: Request) -> dict[str, Any]:
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return {}
        try:
            data = self.signer.loads(cookie, max_age=SESSION_SECONDS)
        except BadSignature:
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def fresh() -> dict[str, Any]:
        """A session before sign-in: a CSRF token for the sign-in form."""
        return {"csrf": secrets.token_urlsafe(32), "at": int(time.time())}

    def signed_in(self, conn: Any, subject: str, name: str, groups: list[str]) -> dict[str, Any]:
        """A new session of `subject`, with a new CSRF token (no session fixation)."""
        version = sessions.start(conn, subject, name, groups)
        session = {**self.fresh(), "sub": subject, "v": version, "name": name}
        if subject == PASSWORD_USER:
            session["pw"] = self.password_mark
        return session

    def session_actor(self, conn: Any, session: dict[str, Any]) -> Actor | None:
        """Who a signed-in session is now; None once it is void."""
        subject, version = session.get("sub"), session.get("v")
        if not isinstance(subject, str) or not isinstance(version, int):
            return None
        if subject == PASSWORD_USER and not (
            self.password_sign_in and session.get("pw") == self.password_mark
        ):
            return None
        grants = sessions.grants_of(conn, subject, version)
        if grants is None:
            return None
        if subject == PASSWORD_USER:
            return administrator("user", BREAK_GLASS)
        return Actor("user", subject.removeprefix("oidc:"), grants)

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
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
        return self.from_proxy(request) and forwarded == "https"

    def from_proxy(self, request: Request) -> bool:
        proxies = {p.strip() for p in self.settings.web_trusted_proxies.split(",")}
        return (request.client.host if request.client else None) in proxies

    def address(self, request: Request) -> str:
        """The client's address: the one a trusted proxy saw, behind one."""
        client = request.client.host if request.client else "-"
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded and self.from_proxy(request):
            return forwarded.split(",")[-1].strip()[:64] or client
        return client

    @staticmethod
    def csrf_ok(session: dict[str, Any], given: object) -> bool:
        expected = session.get("csrf")
        if not isinstance(given, str) or not isinstance(expected, str) or not expected:
            return False
        return hmac.compare_digest(given.encode(), expected.encode())

    # ---- API --------------------------------------------------------------------------------

    def token_actor(self, conn: Any, request: Request) -> Actor | None:
        """ORGSYNC_API_TOKEN (break-glass, admin on all) or a named token from
        `orgsync tokens create`; None for anything else."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        expected = self.settings.api_token
        if expected and hmac.compare_digest(token.encode(), expected.encode()):
            return administrator("token", BREAK_GLASS)
        return access.token_actor(conn, token)


Handler = Callable[[Request], Response]


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A signed-in page: 403 for a form posted without the session's CSRF token, else a
    redirect to /login without a session (401 for a partial refresh), a "no access" page for a
    user no grant admits, 403 for a role too weak. `handler` runs in a thread, as it talks to
    PostgreSQL and RabbitMQ with blocking clients."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        guard: Guard = request.app.state.guard
        session = guard.session(request)
        if request.method == "POST":  # checked first: a post without a session has no token
            form = await request.form()
            if not guard.csrf_ok(session, form.get("csrf_token")):
                return PlainTextResponse("CSRF token missing or wrong", status_code=403)
            request.state.form = form
        if session.get("sub"):
            request.state.session = session
            return await run_in_threadpool(_admit_page, handler, request)
        return _to_sign_in(request)

    return endpoint


def _to_sign_in(request: Request) -> Response:
    if request.headers.get("x-refresh"):
        return PlainTextResponse("sign in again", status_code=401)
    if request.method == "POST":  # back to a form's page, never to its action
        return RedirectResponse("/login", status_code=303)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _admit_page(handler: Handler, request: Request) -> Response:
    guard: Guard = request.app.state.guard
    with request.app.state.house.connect() as conn:
        actor = guard.session_actor(conn, request.state.session)
    if actor is None:  # signed out, its grants revoked, or the password changed
        request.state.session = {}
        response = _to_sign_in(request)
        response.delete_cookie(COOKIE, path="/")
        return response
    request.state.actor = actor
    need = roles.need(request)
    if need.reach is not Reach.SIGNED_IN and not actor.grants:
        return render(request, "no_access.html", 403)
    if not need.met_by(actor):
        message = f"this page needs the {need.role} role ({actor} holds {_held(actor)})"
        return render(request, "error.html", 403, message=message)
    return handler(request)


def _held(actor: Actor) -> str:
    return ", ".join(map(str, actor.grants)) or "none"


def api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """An API route: `Authorization: Bearer <token>` (401 otherwise), 403 for a role too
    weak."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        refused = await run_in_threadpool(_admit_api, request)
        if refused is not None:
            return refused
        request.state.body = await request.body() if request.method == "POST" else b""
        return await run_in_threadpool(handler, request)

    return endpoint


def _admit_api(request: Request) -> Response | None:
    """None when the bearer token's actor may call the route (then on request.state.actor)."""
    guard: Guard = request.app.state.guard
    with request.app.state.house.connect() as conn:
        actor = guard.token_actor(conn, request)
    if actor is None:
        return JSONResponse(
            {
                "error": "send Authorization: Bearer <token> (ORGSYNC_API_TOKEN, or one from"
                " `orgsync tokens create`), unexpired and not revoked"
            },
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.actor = actor
    need = roles.need(request)
    if not need.met_by(actor):
        message = f"this route needs the {need.role} role; {actor} holds {_held(actor)}"
        return JSONResponse({"error": message}, status_code=403)
    return None
