"""The web console's application: routes, templates, security headers, its house.

`create_app(settings)` is what `orgsync web`, the tests and the benchmark run. Pages and the
API use one `House` (services/bootstrap.py), opened at startup and closed at shutdown: its
pool for PostgreSQL, its broker for what a form or the API publishes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings
from orgsync.services.web import (
    api,
    audit_pages,
    auth,
    door,
    forms,
    inventory_pages,
    oidc,
    org_actions,
    roles,
    signin,
    webhook_pages,
)
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
    # nothing here needs a camera, a microphone, a position, a payment or the like
    (
        b"permissions-policy",
        b"camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    ),
]


# HSTS only where the request came over TLS (auth.Guard.over_tls): a browser ignores it over
# plain HTTP, and a console reached by http://127.0.0.1 must stay reachable
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *HEADERS]
                if scope["app"].state.guard.over_tls(Request(scope)):
                    message["headers"].append(HSTS)
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


async def not_found(request: Request, error: Exception) -> Response:
    """A path no route serves: JSON under /api/, else the console's own error page."""
    status = getattr(error, "status_code", 404)
    words = "no such route" if status == 404 else "method not allowed here"
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": f"{words}: {request.method} {request.url.path}"}, status)
    message = f"{words}: {request.url.path}" if status == 404 else f"{words}: {request.method}"
    return render(request, "error.html", status, message=message)


def create_app(settings: Settings, *, limits: signin.SignInLimits | None = None) -> Starlette:
    guard = auth.Guard(settings)  # refuses without a way to sign in, or with a short secret

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
        *signin.routes(),
        *inventory_pages.routes(),
        *forms.routes(),
        *webhook_pages.routes(),
        *api.routes(),
        *org_actions.routes(),
        *audit_pages.routes(),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    handlers = {404: not_found, 405: not_found}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.settings = settings
    app.state.guard = guard
    app.state.needs = roles.bind(routes)  # every route's role (roles.py), or no start
    app.state.sign_in_limits = limits or signin.SignInLimits()
    app.state.oidc = oidc.client(settings)
    if app.state.oidc is not None:  # Authlib keeps its state, nonce and PKCE verifier here
        app.add_middleware(
            SessionMiddleware,
            secret_key=guard.secret,
            session_cookie="orgsync_oidc",
            max_age=600,
            same_site="lax",
            https_only=settings.web_secure_cookies,
        )
    app.state.templates = templates()
    # the door first: nothing reads a body, a form or a session before it
    app.add_middleware(door.Door, max_body_bytes=settings.web_max_body_bytes)
    app.add_middleware(SecurityHeaders)  # added last, so outermost: on the door's answers too
    return app
