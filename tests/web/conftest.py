"""The web console against the real PostgreSQL of tests/conftest.py, through Starlette's
TestClient; rows are written straight into the tables a sync would fill."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from orgsync.services.settings import Settings
from orgsync.services.web.app import create_app
from tests.support.web import PASSWORD, TOKEN, sign_in


@pytest.fixture
def web_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, web_password=PASSWORD, api_token=TOKEN)


@pytest.fixture
def anonymous(web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings), follow_redirects=False) as http:
        yield http


@pytest.fixture
def web(anonymous: TestClient) -> TestClient:
    """A signed-in browser."""
    sign_in(anonymous)
    return anonymous
