"""Templates: Jinja2 with autoescape on, so every value from AWS is shown as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from orgsync.pipelines.access import Role
from orgsync.pipelines.badges import ORGANIZATION_BADGES
from orgsync.services.commands.output import cell, changes_text, counts_text
from orgsync.services.read_models import inventory
from orgsync.services.settings import rate_override_text

HERE = Path(__file__).resolve().parent


def templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["show"] = cell  # timestamps and counts as the CLI's tables print them
    env.filters["rate_override"] = rate_override_text  # as --aws-rates and the form take it
    env.filters["sent"] = inventory.describe_sent  # what a sync sent down the stages, and why
    env.filters["changes"] = changes_text  # an audit row's changes, as `orgsync audit` prints
    env.filters["counts"] = counts_text  # a discovery's counts, as `orgsync orgs` prints them
    # the organization's own badges, which a listing shows as its organization and path columns
    env.globals["organization_badges"] = ORGANIZATION_BADGES
    # what the signed-in actor may do, so a page offers only the actions its role allows
    env.globals["Role"] = Role
    return Jinja2Templates(env=env)


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    session = getattr(request.state, "session", None) or {}
    context.setdefault("csrf_token", session.get("csrf", ""))
    context.setdefault("signed_in", bool(session.get("sub")))
    context.setdefault("actor", getattr(request.state, "actor", None))
    return request.app.state.templates.TemplateResponse(  # type: ignore[no-any-return]
        request, name, context, status_code=status_code
    )
