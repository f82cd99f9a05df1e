"""A real OpenID Connect provider for the browser tests: tests/oidc/provider.mjs (panva's
oidc-provider, installed by `make oidc-provider`: npm ci), run by node in a process of its own.

Without node or the installed package the tests that need it skip, except under CI=true, where
they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.services import IN_CI
from tests.support.waiting import wait_until
from tests.support.web import free_port

HERE = Path(__file__).resolve().parents[1] / "oidc"
CLIENT_ID, CLIENT_SECRET = "orgsync-console", "a-client-secret-for-the-tests-only"


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET


@contextmanager
def oidc_provider(redirect_uri: str, users: dict[str, list[str]]) -> Iterator[Provider]:
    """The provider on a free port of `localhost` (another site than the console's
    127.0.0.1, as a real provider is), `users` by login name with their groups."""
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
        message = "no node or no tests/oidc/node_modules (make oidc-provider)"
        if IN_CI:
            pytest.fail(message + "; CI must provide it", pytrace=False)
        pytest.skip(message)
    port = free_port()
    issuer = f"http://localhost:{port}"
    env = {
        **os.environ,
        "OIDC_PORT": str(port),
        "OIDC_ISSUER": issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_REDIRECT_URI": redirect_uri,
        "OIDC_USERS": json.dumps(users),
    }
    process = subprocess.Popen(
        [node, str(HERE / "provider.mjs")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        wait_until(lambda: process.stdout.readline().strip() == "ready", 30, "the provider ready")
        yield Provider(issuer)
    finally:
        process.terminate()
        process.wait(timeout=10)
