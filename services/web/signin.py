"""Signing in and out: the break-glass password, limited before it is checked, and the
identity provider (oidc.py).

Every password attempt is counted in PostgreSQL before the password is looked at, on three
keys: the account, the client's address, and everyone. Past a key's limit the answer is 429
until its window has passed, whatever the password: so guesses sent at once are limited as
surely as guesses sent one by one (a delay added to each failing answer only slows each guess,
not how many run together). The limit applies in every web process at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from orgsync.services.use_cases import sessions
from orgsync.services.web import auth, oidc
from orgsync.services.web.render import render

ACCOUNT = "break-glass"  # the one account the password signs in to
MAX_PASSWORD = 1024  # longer is wrong without hashing it


@dataclass(frozen=True)
class SignInLimits:
    """Password attempts per window: per account and per address in `window` seconds, and in
    all in `everyone_window` (a spray from many addresses)."""

    account: int = 10
    address: int = 30
    window: float = 900.0
    everyone: int = 100
    everyone_window: float = 60.0

    def keys(self, address: str) -> list[sessions.Limit]:
        return [
            sessions.Limit(f"account:{ACCOUNT}", self.account, self.window),
            sessions.Limit(f"address:{address}", self.address, self.window),
            sessions.Limit("global", self.everyone, self.everyone_window),
        ]


def login_form(request: Request) -> Response:
    guard: auth.Guard = request.app.state.guard
    session = guard.session(request)
    if not session.get("csrf"):
        session = guard.fresh()
    response = show(request, session, None)
    guard.store(request, response, session)
    return response


def show(
    request: Request,
    session: dict[str, Any],
    error: str | None,
    status_code: int = 200,
    given_next: object = None,
) -> Response:
    guard: auth.Guard = request.app.state.guard
    return render(
        request,
        "login.html",
        status_code,
        next=safe_next(request, given_next),
        error=error,
        password=guard.password_sign_in,
        oidc=request.app.state.oidc is not None,
        csrf_token=session.get("csrf", ""),
        signed_in=False,
    )


async def login(request: Request) -> Response:
    guard: auth.Guard = request.app.state.guard
    session = guard.session(request)
    form = await request.form()
    if not guard.csrf_ok(session, form.get("csrf_token")):
        return Response("CSRF token missing or wrong", status_code=403)
    given_next = form.get("next")
    if not guard.password_sign_in:
        return show(request, session, "Password sign-in is off.", 403, given_next)
    wait = await run_in_threadpool(reserve, request)
    if wait:
        response = show(
            request,
            session,
            f"Too many sign-in attempts: try again in {wait:.0f} s.",
            429,
            given_next,
        )
        response.headers["Retry-After"] = f"{wait:.0f}"
        return response
    password = form.get("password")
    good = isinstance(password, str) and len(password) <= MAX_PASSWORD
    if not (good and await run_in_threadpool(guard.password_ok, str(password))):
        return show(request, session, "Wrong password.", 401, given_next)
    signed_in = await run_in_threadpool(start_password_session, request)
    response = RedirectResponse(safe_next(request, given_next), status_code=303)
    guard.store(request, response, signed_in)
    return response


def reserve(request: Request) -> float:
    guard: auth.Guard = request.app.state.guard
    limits: SignInLimits = request.app.state.sign_in_limits
    with request.app.state.house.connect() as conn:
        return sessions.reserve(conn, limits.keys(guard.address(request)))


def start_password_session(request: Request) -> dict[str, Any]:
    guard: auth.Guard = request.app.state.guard
    limits: SignInLimits = request.app.state.sign_in_limits
    keys = [lim.key for lim in limits.keys(guard.address(request))[:2]]
    with request.app.state.house.connect() as conn:
        sessions.clear(conn, keys)
        return guard.signed_in(conn, auth.PASSWORD_USER, ACCOUNT, [])


@auth.page
def logout(request: Request) -> Response:
    """Voids this user's sessions, in every process (their version moves on)."""
    session = request.state.session
    with request.app.state.house.connect() as conn:
        sessions.end(conn, session["sub"], session["v"])
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.COOKIE, path="/")
    return response


def safe_next(request: Request, given: object = None) -> str:
    """Only a path on this site: never an open redirect."""
    target = given if isinstance(given, str) else request.query_params.get("next", "")
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or parts.scheme or parts.netloc:
        return "/orgs"
    if target.startswith("/\\"):
        return "/orgs"
    return target


def routes() -> list[Route]:
    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        *oidc.routes(),
    ]
