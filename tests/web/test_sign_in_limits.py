"""The door under abuse: password guesses limited per account, per address and in all before
the password is checked (sent all at once to a real server, as an attacker would), and secrets
too short refused at start."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from orgsync.services.settings import Settings, SettingsError
from orgsync.services.web.app import create_app
from orgsync.services.web.signin import SignInLimits
from tests.support.web import PASSWORD, serving

pytestmark = pytest.mark.integration


async def guesses(url: str, passwords: list[str], addresses: list[str] | None = None) -> Counter:
    """Each password posted at once from one browser session (from `addresses`, one each,
    through the trusted proxy's X-Forwarded-For): the count of each status answered."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        form = await http.get("/login")
        match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert match
        sent = [
            http.post(
                "/login",
                data={"password": password, "csrf_token": match[1]},
                headers={"X-Forwarded-For": addresses[i]} if addresses else {},
            )
            for i, password in enumerate(passwords)
        ]
        answers = await asyncio.gather(*sent)
    return Counter(answer.status_code for answer in answers)


def at_once(sending: Coroutine[None, None, Counter]) -> Counter:
    """Run `sending` on an event loop of its own thread: Playwright's fixtures keep a loop
    running on the main thread once a browser test has run in this process."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, sending).result()


def test_sixty_wrong_passwords_and_the_right_one_sent_at_once_are_limited_before_checking(
    web_settings: Settings,
) -> None:
    with serving(create_app(web_settings)) as url:
        counts = at_once(guesses(url, [f"wrong-{i}" for i in range(60)] + [PASSWORD]))
        checked = counts[401] + counts[303]
        assert checked <= SignInLimits().account, counts
        assert counts[429] >= 61 - SignInLimits().account, counts
        # limited, the right password is not even checked: 429 until the window has passed
        assert at_once(guesses(url, [PASSWORD])) == Counter({429: 1})


def test_guesses_from_many_addresses_meet_the_limit_of_every_sign_in(
    web_settings: Settings,
) -> None:
    limits = SignInLimits(account=1000, address=3, everyone=10)
    with serving(create_app(web_settings, limits=limits)) as url:
        spread = [f"10.0.0.{i}" for i in range(30)]
        counts = at_once(guesses(url, ["wrong"] * 30, spread))
        assert counts[401] <= 10 and counts[429] >= 20, counts


def test_guesses_from_one_address_meet_its_own_limit(web_settings: Settings) -> None:
    limits = SignInLimits(account=1000, address=3, everyone=1000)
    with serving(create_app(web_settings, limits=limits)) as url:
        counts = at_once(guesses(url, ["wrong"] * 8, ["10.9.9.9"] * 8))
        assert counts == Counter({401: 3, 429: 5})
        # another address is not limited by the first one's guesses
        assert at_once(guesses(url, [PASSWORD], ["10.1.1.1"])) == Counter({303: 1})


def test_a_right_password_clears_the_count_of_its_account_and_address(
    web_settings: Settings,
) -> None:
    limits = SignInLimits(account=3, address=3)
    with serving(create_app(web_settings, limits=limits)) as url:
        for _ in range(3):  # wrong, wrong, right: the account starts again after each right one
            assert at_once(guesses(url, ["wrong", "wrong"])) == Counter({401: 2})
            assert at_once(guesses(url, [PASSWORD])) == Counter({303: 1})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORGSYNC_WEB_PASSWORD", "x"),
        ("ORGSYNC_API_TOKEN", "t" * 31),
        ("ORGSYNC_WEB_SESSION_SECRET", "s" * 31),
    ],
)
def test_a_secret_too_short_is_refused_at_start_in_one_line(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"{name} is {len(value)} characters"):
        Settings.from_env({name: value})
    done = subprocess.run(
        [sys.executable, "-m", "orgsync", "web", "--port", "0"],
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": "/tmp",
            "ORGSYNC_WEB_PASSWORD": PASSWORD,
            name: value,
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert f"{name} is {len(value)} characters: at least" in done.stderr


def test_orgsync_web_with_password_sign_in_off_needs_an_identity_provider(
    web_settings: Settings,
) -> None:
    off = dataclasses.replace(web_settings, web_password_sign_in=False)
    with pytest.raises(Exception, match="ORGSYNC_OIDC_ISSUER"):
        create_app(off)
    done = subprocess.run(
        [sys.executable, "-m", "orgsync", "web", "--port", "0"],
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": "/tmp",
            "ORGSYNC_WEB_PASSWORD": PASSWORD,
            "ORGSYNC_WEB_PASSWORD_SIGN_IN": "off",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "ORGSYNC_OIDC_ISSUER" in done.stderr
    assert done.stderr.strip().count("\n") == 0
