"""An operator's afternoon in the console, in chromium: sign in, register an organization
(a mistyped ARN first), follow its count to the listing, open a managed account, retry a
failed validation, and watch the pipeline page move during a sync."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from orgsync.services.adapters import db
from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import OrgSpec, SampleOrg, build_organization
from orgsync.services.use_cases import syncs
from tests.support.browser import PASSWORD
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
TIMEOUT = 60


def sign_in(page: Any, web_url: str, password: str = PASSWORD) -> None:
    page.goto(f"{web_url}/orgs")  # redirected to the sign-in page
    page.fill("#password", password)
    page.click("button:has-text('Sign in')")


def fill_registration(page: Any, org: SampleOrg, role_arn: str) -> None:
    page.fill("#nickname", "acme")
    page.fill("#org_role_arn", role_arn)
    page.fill("#org_session_name", "orgsync-web")
    page.fill("#org_session_duration", "3600")
    page.fill("#member_role_name", org.member_role_name)
    page.fill("#member_session_name", "orgsync-web-member")
    page.fill("#member_session_duration", "900")
    page.fill("#exclude_prefixes", "sandbox-")
    page.check("input[name=auto_badge]")
    page.click("form.registration button[type=submit]")


def status_of(settings: Settings, account_id: str) -> str:
    with db.connect(settings.database_url) as conn:
        row = conn.execute("SELECT status FROM accounts WHERE account_id = %s", (account_id,))
        return str(row.fetchone()["status"])


def test_signing_in_takes_the_right_password_only(
    page: Any, web_url: str, shoot: Callable[[str], Path]
) -> None:
    sign_in(page, web_url, "not the password")
    expect(page.locator("[role=alert]")).to_have_text("Wrong password.")
    shoot("login")
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")
    expect(page).to_have_url(f"{web_url}/orgs")
    expect(page.locator("h1")).to_have_text("Organizations")


def test_an_operator_registers_browses_retries_and_watches_a_sync(
    page: Any,
    web_app: Any,
    web_url: str,
    shoot: Callable[[str], Path],
    settings: Settings,
    house: House,
    aws: SimulatedAws,
    worker: Path,
) -> None:
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=8, suspended=1, excluded=1))
    members = [a for a in org.accounts if not a.suspended and not a.name.startswith("sandbox-")]
    denied, managed = members[0], members[1]
    aws.faults.update(deny_assume_role=[denied.id])
    sign_in(page, web_url)

    # a mistyped ARN: the registrar's reason beside its field, nothing registered
    page.click("text=Add an organization")
    fill_registration(page, org, org.org_role_arn.replace("arn:aws:", "arn:aw:"))
    reason = page.locator("#field-org_role_arn .reason")
    expect(reason).to_contain_text("partition 'aw' is not one of aws")
    mistyped = org.org_role_arn.replace("arn:aws:", "arn:aw:")
    expect(page.locator("#org_role_arn")).to_have_value(mistyped)  # kept, to be corrected
    expect(page.locator("#member_role_name")).to_have_value(org.member_role_name)
    shoot("org-form")
    fill_registration(page, org, org.org_role_arn)
    expect(page.locator("h1")).to_have_text("Request accepted")
    shoot("verdict")
    org_id = page.locator("[role=status] code").nth(1).inner_text()
    sync_id = syncs.latest_sync(house, org_id)
    assert sync_id is not None
    syncs.wait_sync(house, sync_id, TIMEOUT)

    # the organization's account count leads to the listing filtered by its badge
    page.goto(f"{web_url}/orgs")
    expect(page.locator("tbody tr")).to_have_count(1)
    shoot("orgs")
    count = int(page.locator("a.count").inner_text().split()[0])
    assert count == len(members) + 2  # with the suspended member and the management account
    page.click("a.count")
    expect(page).to_have_url(f"{web_url}/accounts?badge=system.cloud_organization%3D{org_id}")
    expect(page.locator("table.listing tbody tr")).to_have_count(count)
    expect(page.locator(f"text={denied.name}")).to_be_visible()
    shoot("accounts")

    # a managed account: which organization manages it, and no edit, no delete
    page.click(f"a[href='/accounts/{managed.id}']")
    expect(page.locator("#managed")).to_contain_text("acme")
    expect(page.locator("main form")).to_have_count(0)
    expect(page.locator("main")).not_to_contain_text("Delete")
    shoot("account")

    # the other pages: what discovery left out, the edit form, a page that does not exist
    page.goto(f"{web_url}/accounts?excluded=1")
    expect(page.locator("main")).to_contain_text("name_prefix:sandbox-")
    shoot("excluded")
    page.goto(f"{web_url}/orgs/{org_id}/edit")
    expect(page.locator("#exclude_prefixes")).to_have_value("sandbox-")
    shoot("org-edit")
    page.goto(f"{web_url}/webhooks")
    expect(page.locator("h1")).to_have_text("Webhooks")
    shoot("webhooks")
    page.goto(f"{web_url}/no-such-page")
    expect(page.locator("[role=alert]")).to_have_text("no such route: /no-such-page")
    shoot("not-found")

    # the failed validation, retried once AWS lets the role be assumed again
    page.goto(f"{web_url}/failed")
    row = page.locator("tbody tr", has_text=denied.id)
    expect(row).to_contain_text("AccessDenied")
    shoot("failed")
    aws.faults.update(deny_assume_role=[])
    row.locator("button:has-text('Retry')").click()
    expect(page.locator("#retry-result")).to_contain_text("would queue 1 account(s)")
    shoot("retry")
    page.click("button:has-text('Queue 1 account(s) now')")
    expect(page.locator("#retry-result")).to_contain_text("queued 1 account(s)")
    wait_until(lambda: status_of(settings, denied.id) == "ok", TIMEOUT, "the retried account ok")

    # a sync started from the console: the pipeline page follows it on its own
    aws.faults.update(latency_ms=150)
    page.goto(f"{web_url}/orgs")
    page.click("button:has-text('Full sync now')")
    expect(page).to_have_url(f"{web_url}/pipeline")
    state = page.locator("#stages tbody tr", has_text="acme").locator(".sync-state")
    expect(state).to_have_text("running")
    shoot("pipeline")
    expect(state).to_have_text("complete", timeout=TIMEOUT * 1000)
    assert page.locator("#pipeline").get_attribute("data-refreshed-at")

    # the last hour as charts, drawn on the server: a line per queue, and the accounts per second
    web_app.state.history.sample()  # what its thread does every 15 s
    page.reload()
    depth = page.locator("#depth-chart svg")
    expect(depth).to_be_visible()
    box = depth.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    expect(depth.locator("polyline.series")).to_have_count(5)  # one per stage queue
    rate = page.locator("#rate-chart polyline.series")
    expect(rate).to_have_count(1)
    expect(page.locator("#rate-chart svg text", has_text="accounts/s")).to_have_count(1)
    points = (rate.get_attribute("points") or "").split()
    baseline = max(float(p.split(",")[1]) for p in points)  # y grows downwards
    assert any(float(p.split(",")[1]) < baseline for p in points)  # the sync's accounts/s
    page.locator("#depth-chart").scroll_into_view_if_needed()
    shoot("pipeline-charts")
    aws.faults.update(latency_ms=0)
