"""Signing in through the organization's identity provider, in chromium: a real OpenID Connect
provider (tests/oidc/provider.mjs) on another site, its own sign-in pages, the code flow with
PKCE back to the console. A viewer group of one organization sees that one alone; an admin
group sees them all; a user whose groups have no grant sees that they have no access."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from orgsync.services.adapters import db
from orgsync.services.settings import Settings
from orgsync.services.web.app import create_app
from tests.support.browser import PASSWORD
from tests.support.oidc import oidc_provider
from tests.support.web import add_account, add_org, free_port, grant, serving

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
A, B = "o-aaaaaaaaaa", "o-bbbbbbbbbb"
USERS = {"vera": ["alpha-viewers", "staff"], "adam": ["org-admins"], "nora": ["interns"]}


@pytest.fixture
def console(settings: Settings) -> Iterator[str]:
    """The console, signing in through the provider, with alpha and beta and the grants."""
    with db.connect(settings.database_url) as conn:
        add_org(conn, A, "alpha")
        add_org(conn, B, "beta")
        add_account(conn, "100000000001", "alpha-prod", A)
        add_account(conn, "200000000001", "beta-prod", B)
        grant(conn, "alpha-viewers", "viewer", A)
        grant(conn, "org-admins", "admin", None)
        conn.commit()
    port = free_port()
    callback = f"http://127.0.0.1:{port}/login/oidc/callback"
    with oidc_provider(callback, USERS) as provider:
        configured = dataclasses.replace(
            settings,
            web_password=PASSWORD,
            oidc_issuer=provider.issuer,
            oidc_client_id=provider.client_id,
            oidc_client_secret=provider.client_secret,
            oidc_scopes="openid email profile groups",
        )
        with serving(create_app(configured), port) as url:
            yield url


def sign_in_at_the_provider(page: Any, console: str, login: str) -> None:
    page.goto(f"{console}/accounts")  # redirected to the console's sign-in page
    page.click("#oidc")
    page.wait_for_url("http://localhost:*/**")  # the provider's own pages
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    consent = page.locator("button[type=submit]:has-text('Continue')")
    consent.wait_for()
    consent.click()
    page.wait_for_url(f"{console}/accounts")


def test_a_viewer_group_of_one_organization_sees_it_alone(
    page: Any, console: str, shoot: Callable[[str], Path]
) -> None:
    sign_in_at_the_provider(page, console, "vera")
    expect(page.locator("#total")).to_have_text("1 account(s) · page 1 of 1")
    expect(page.locator("main")).to_contain_text("alpha-prod")
    expect(page.locator("main")).not_to_contain_text("beta-prod")
    expect(page.locator("header .who")).to_have_text("user:vera")
    shoot("oidc-viewer")
    page.goto(f"{console}/orgs")
    expect(page.locator("main")).to_contain_text("alpha")
    expect(page.locator("main")).not_to_contain_text("beta")
    assert "Webhooks" not in page.locator("nav").inner_text()
    page.goto(f"{console}/accounts/200000000001")
    expect(page.locator("main")).to_contain_text("no account 200000000001")


def test_an_admin_group_sees_every_organization(page: Any, console: str) -> None:
    sign_in_at_the_provider(page, console, "adam")
    expect(page.locator("#total")).to_have_text("2 account(s) · page 1 of 1")
    page.goto(f"{console}/orgs")
    expect(page.locator("main")).to_contain_text("beta")
    expect(page.locator("nav")).to_contain_text("Webhooks")


def test_a_user_whose_groups_have_no_grant_is_told_so(page: Any, console: str) -> None:
    page.goto(f"{console}/orgs")
    page.click("#oidc")
    page.wait_for_url("http://localhost:*/**")
    page.fill("input[name=login]", "nora")
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.locator("button[type=submit]:has-text('Continue')").click()
    expect(page.locator("h1")).to_have_text("No access")
    expect(page.locator("main")).not_to_contain_text("alpha")
