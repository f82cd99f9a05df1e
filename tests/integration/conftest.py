"""Integration: real PostgreSQL and RabbitMQ, moto in this process; no worker processes.
The fixtures here serve more than one module of this folder only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import psycopg
import pytest

from orgsync.pipelines.credentials import Keyring
from orgsync.services.commands import cli
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from tests.support.discovery import DEEP, AwsOrg
from tests.support.feed_world import world  # noqa: F401 - a fixture of the feed and incremental-sync tests


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    keyring: Keyring,
) -> Any:
    """`orgsync ARGS…` in this process, on the test's database, vhost and keys: (exit code,
    stdout, stderr)."""
    monkeypatch.setenv("ORGSYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ORGSYNC_BROKER_URL", settings.broker_url)
    monkeypatch.setenv("ORGSYNC_ENCRYPTION_KEYS", keyring.format())

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "orgsync" / "keys"


@pytest.fixture
def autocommit(database_url: str) -> Any:
    # as `orgsync keys rotate` runs it: each row resealed in its own transaction
    with psycopg.connect(database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as c:
        yield c


@pytest.fixture
def org(aws: SimulatedAws) -> AwsOrg:
    return AwsOrg(aws.endpoint_url)


@pytest.fixture
def tree(org: AwsOrg) -> dict[str, str]:
    """One account at every level of a four-deep branch, plus siblings: name -> account id."""
    layout = {
        "top": "Root",
        "eng": "Root/Engineering",
        "prod": "Root/Engineering/Prod",
        "apps": "Root/Engineering/Prod/Apps",
        "core": DEEP,
        "dev": "Root/Engineering/Dev",
        "dev-deep": "Root/Engineering/Dev/Tools/Build",
        "fin": "Root/Finance",
        "payroll": "Root/Finance/Payroll/Europe/Paris",
    }
    return {name: org.account(name, path) for name, path in layout.items()}


@pytest.fixture(scope="session")
def rabbitmq_user(rabbitmq_server: tuple[str, Any], broker_url: str) -> Iterator[str]:
    """A RabbitMQ user (password `right`) on the run's vhost, deleted after the run: tests only
    sign in with it, right or wrong, and each `rabbitmqctl` call costs 1-2 s."""
    _base, ctl = rabbitmq_server
    user = f"orgsync-user-{uuid.uuid4().hex[:8]}"
    ctl("add_user", user, "right")
    ctl("set_permissions", "-p", unquote(broker_url.rsplit("/", 1)[1]), user, ".*", ".*", ".*")
    yield user
    ctl("delete_user", user)
