"""The web console's application: routes, templates, security headers, its house.

`create_app(settings)` is what `orgsync web`, the tests and the benchmark run. Pages and the
API use one `House` (services/bootstrap.py), opened at startup and closed at shutdown: its
pool for PostgreSQL, its broker for what a form or the API publishes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings
from orgsync.services.web import api, auth, forms, inventory_pages, webhook_pages
from orgsync.services.web.pipeline_history import PipelineHistory
from orgsync.services.web.render import HERE, render, templates

# no inline script or style anywhere: the only script is /static/app.js
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def login_form(request: Request) -> Response:
    guard: auth.Guard = request.app.state.guard
    session = guard.session(request)
    if not session.get("csrf"):
        session = guard.fresh(user=False)
    response = render(
        request, "login.html", next=_safe_next(request), error=None, **_token(session)
    )
    guard.store(request, response, session)
    return response


async def login(request: Request) -> Response:
    guard: auth.Guard = request.app.state.guard
    session = guard.session(request)
    form = await request.form()
    if not guard.csrf_ok(session, form.get("csrf_token")):
        return Response("CSRF token missing or wrong", status_code=403)
    password = form.get("password")
    if not isinstance(password, str) or not await _check(guard, password):
        await guard.slow_down(request)
        return render(
            request,
            "login.html",
            status_code=401,
            next=_safe_next(request, form.get("next")),
            error="Wrong password.",
            **_token(session),
        )
    guard.signed_in(request)
    response = RedirectResponse(_safe_next(request, form.get("next")), status_code=303)
    guard.store(request, response, guard.fresh(user=True))
    return response


async def _check(guard: auth.Guard, password: str) -> bool:
    return await run_in_threadpool(guard.password_ok, password)


@auth.page
def logout(request: Request) -> Response:
    request.app.state.guard.sign_out(request.state.session)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.COOKIE, path="/")
    return response


def _token(session: dict[str, Any]) -> dict[str, Any]:
    return {"csrf_token": session.get("csrf", "")}


def _safe_next(request: Request, given: object = None) -> str:
    """Only a path on this site: never an open redirect."""
    target = given if isinstance(given, str) else request.query_params.get("next", "")
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or parts.scheme or parts.netloc:
        return "/orgs"
    return target


async def not_found(request: Request, error: Exception) -> Response:
    """A path no route serves: JSON under /api/, else the console's own error page."""
    status = getattr(error, "status_code", 404)
    words = "no such route" if status == 404 else "method not allowed here"
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": f"{words}: {request.method} {request.url.path}"}, status)
    message = f"{words}: {request.url.path}" if status == 404 else f"{words}: {request.method}"
    return render(request, "error.html", status, message=message)


def create_app(settings: Settings, *, failed_delay: float = auth.FAILED_SIGN_IN_DELAY) -> Starlette:
    guard = auth.Guard(settings, failed_delay=failed_delay)  # refuses without a password

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        with House(settings) as app.state.house:
            app.state.history = PipelineHistory(app.state.house)
            app.state.history.start()
            try:
                yield
            finally:
                app.state.history.stop()

    routes = [
        Route("/", lambda request: RedirectResponse("/orgs", status_code=303)),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        *inventory_pages.routes(),
        *forms.routes(),
        *webhook_pages.routes(),
        *api.routes(),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    handlers = {404: not_found, 405: not_found}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.settings = settings
    app.state.guard = guard
    app.state.templates = templates()
    app.add_middleware(SecurityHeaders)
    return app
