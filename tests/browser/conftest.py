"""The console in a real browser: Debian's chromium (apt, /usr/bin/chromium) driven by
Playwright from PyPI, against `orgsync web` served by uvicorn in a thread of the test.

Playwright's own browser download cannot reach us, so it is never run: the system browser is
given by path. Without it the tests skip, except under CI=true, where they fail.
Screenshots go to ORGSYNC_SCREENSHOTS_DIR when set (`make screenshots` writes
docs/screenshots/), else into the test's temporary folder.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orgsync.services.settings import Settings
from orgsync.services.web.app import create_app
from tests.support.browser import PASSWORD
from tests.support.services import IN_CI
from tests.support.web import serving

CHROMIUM = Path(os.environ.get("ORGSYNC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 60_000


@pytest.fixture
def web_app(settings: Settings) -> Any:
    """The console's application, which `web_url` serves (its state: the pipeline history)."""
    return create_app(dataclasses.replace(settings, web_password=PASSWORD))


@pytest.fixture
def web_url(web_app: Any) -> Iterator[str]:
    """`orgsync web` on a free port, in a thread, for one test."""
    with serving(web_app) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"no chromium at {CHROMIUM} (apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(message + "; CI must provide it", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def shoot(page: Any, tmp_path: Path) -> Callable[[str], Path]:
    folder = Path(os.environ.get("ORGSYNC_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    return take
