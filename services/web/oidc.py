"""Sign-in through the organization's identity provider: OpenID Connect with Authlib.

The authorization code flow with PKCE (S256); Authlib keeps the state, the nonce and the code
verifier in a short-lived cookie of their own (Starlette's SessionMiddleware, SameSite=Lax: the
provider's redirect back is a cross-site navigation), checks the state, and verifies the ID
token against the keys the issuer publishes (signature, issuer, audience, expiry, nonce). The
user's groups come from the ID token's claim ORGSYNC_OIDC_GROUPS_CLAIM, or from the userinfo
endpoint when the ID token does not carry it; `orgsync grants` maps them to roles.
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.starlette_client import OAuth, OAuthError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orgsync.services.logs import get_logger
from orgsync.services.settings import Settings
from orgsync.services.web import auth
from orgsync.services.web.render import render

CALLBACK = "/login/oidc/callback"
log = get_logger("orgsync.web.oidc")
MAX_GROUPS, MAX_GROUP = 500, 256


def client(settings: Settings) -> Any:
    """The provider's Authlib client; None when ORGSYNC_OIDC_ISSUER is not set."""
    if not settings.oidc_issuer:
        return None
    oauth = OAuth()
    return oauth.register(
        "idp",
        server_metadata_url=f"{settings.oidc_issuer}/.well-known/openid-configuration",
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256"},
    )


def callback_url(request: Request) -> str:
    """What to register at the provider as the redirect URI: this console's
    https://<host>/login/oidc/callback."""
    guard: auth.Guard = request.app.state.guard
    scheme = "https" if guard.over_tls(request) else request.url.scheme
    return f"{scheme}://{request.url.netloc}{CALLBACK}"


async def start(request: Request) -> Response:
    idp = request.app.state.oidc
    if idp is None:
        return render(request, "error.html", 404, message="no identity provider is set up")
    from orgsync.services.web.signin import safe_next

    request.session["next"] = safe_next(request)
    try:
        return await idp.authorize_redirect(request, callback_url(request))  # type: ignore[no-any-return]
    except Exception as error:  # the provider unreachable, or its metadata wrong
        return render(request, "error.html", 503, message=f"identity provider: {error}"[:300])


async def callback(request: Request) -> Response:
    idp = request.app.state.oidc
    if idp is None:
        return render(request, "error.html", 404, message="no identity provider is set up")
    settings: Settings = request.app.state.settings
    try:
        token = await idp.authorize_access_token(
            request,
            claims_options={"iss": {"essential": True, "values": [settings.oidc_issuer]}},
        )
        claims = dict(token.get("userinfo") or {})
        if settings.oidc_groups_claim not in claims:
            claims = {**(await idp.userinfo(token=token)), **claims}
    except OAuthError as error:  # the state does not match, the provider said no
        return render(request, "error.html", 400, message=f"sign-in refused: {error}"[:300])
    except Exception as error:  # an ID token that does not verify, the provider unreachable
        log.warning("oidc_sign_in_failed", error=str(error)[:300])
        return render(request, "error.html", 400, message="sign-in refused: see the console's log")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        return render(request, "error.html", 400, message="the ID token names no subject")
    subject = f"oidc:{claims['sub'][:250]}"
    name = str(claims.get("email") or claims.get("preferred_username") or claims["sub"])[:200]
    groups = group_list(claims.get(settings.oidc_groups_claim))
    guard: auth.Guard = request.app.state.guard

    def sign_in() -> dict[str, Any]:
        with request.app.state.house.connect() as conn:
            return guard.signed_in(conn, subject, name, groups)

    session = await run_in_threadpool(sign_in)
    target = str(request.session.pop("next", "/orgs"))
    # a page, not a redirect: the session cookie is SameSite=Strict, and a redirect that
    # began at the provider is cross-site, so the browser would not send it to `target` yet
    response = render(request, "signed_in.html", target=target, signed_in=False)
    guard.store(request, response, session)
    return response


def group_list(value: object) -> list[str]:
    """The groups claim as a list of names (a list of strings, or one string)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return sorted({g for g in value if isinstance(g, str) and 0 < len(g) <= MAX_GROUP})[:MAX_GROUPS]


def routes() -> list[Route]:
    return [
        Route("/login/oidc", start, methods=["GET"]),
        Route(CALLBACK, callback, methods=["GET"]),
    ]
