"""Real PostgreSQL and RabbitMQ, isolated per run and per test.

Services come from the environment (ORGSYNC_TEST_DATABASE_URL, ORGSYNC_TEST_BROKER_URL) or
localhost; where neither answers and Docker is present, from testcontainers. With CI=true a
missing service fails the run: it never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pika
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from orgsync.pipelines.credentials import Keyring, generate_key
from orgsync.services.adapters import db
from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error})"
    if IN_CI:
        pytest.fail(message + "; CI must provide it", pytrace=False)
    pytest.skip(message)


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server URL pointing at its `postgres` database."""
    url = os.environ.get("ORGSYNC_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres")
    try:
        psycopg.connect(url, connect_timeout=3).close()
        yield url
        return
    except psycopg.OperationalError as error:
        if not docker_available():
            unavailable(f"PostgreSQL at {db.describe(url)}", error)
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:15", driver=None) as container:
        yield container.get_connection_url()


@pytest.fixture(scope="session")
def template_database(postgres_url: str) -> Iterator[str]:
    """A database migrated once per run; every test gets a fresh copy of it."""
    name = f"orgsync_tpl_{uuid.uuid4().hex[:8]}"
    url = make_conninfo(postgres_url, dbname=name)
    db.migrate(url)
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(postgres_url: str, template_database: str) -> Iterator[str]:
    name = f"orgsync_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield make_conninfo(postgres_url, dbname=name)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with db.connect(database_url) as connection:
        yield connection


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[tuple[str, Any]]:
    """(base URL without vhost, how to make a vhost) of a reachable RabbitMQ."""
    base = os.environ.get("ORGSYNC_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672")
    try:
        pika.BlockingConnection(pika.URLParameters(base + "/%2F")).close()
    except pika.exceptions.AMQPError as error:
        if not docker_available():
            unavailable(f"RabbitMQ at {base}", error)
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13") as container:
            params = container.get_connection_params()
            url = f"amqp://guest:guest@{params.host}:{params.port}"

            def in_container(*args: str) -> None:
                container.exec(["rabbitmqctl", "-q", *args])

            yield url, in_container
        return
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is needed to give the tests a vhost of their own")
    yield base, _rabbitmqctl


@contextmanager
def new_vhost(rabbitmq_server: tuple[str, Any], prefix: str) -> Iterator[str]:
    """The URL of a vhost made for the block and deleted after it."""
    base, ctl = rabbitmq_server
    vhost = make_vhost(ctl, prefix)
    yield f"{base}/{quote(vhost, safe='')}"
    ctl("delete_vhost", vhost)


def make_vhost(ctl: Any, prefix: str) -> str:
    vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"
    ctl("add_vhost", vhost)
    ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    return vhost


class VhostSupply:
    """Vhosts for one test each, made one ahead and deleted behind, in a thread: every
    `rabbitmqctl` call boots an Erlang VM (1-2 s on a loaded two-core machine), which a test
    then no longer waits for. A vhost is still never shared by two tests."""

    def __init__(self, rabbitmq_server: tuple[str, Any], prefix: str) -> None:
        self.base, self.ctl = rabbitmq_server
        self.prefix = prefix
        self.chores = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vhosts")
        self.ahead: Future[str] | None = None
        self.deletions: list[Future[None]] = []

    def take(self) -> str:
        made = self.ahead or self.chores.submit(make_vhost, self.ctl, self.prefix)
        self.ahead = self.chores.submit(make_vhost, self.ctl, self.prefix)
        return made.result()

    def delete(self, vhost: str) -> None:
        self.deletions.append(self.chores.submit(self.ctl, "delete_vhost", vhost))

    def close(self) -> None:
        if self.ahead is not None:
            self.delete(self.ahead.result())
        self.chores.shutdown(wait=True)
        for deletion in self.deletions:
            deletion.result()  # a vhost left behind is an error of the run


@pytest.fixture(scope="session")
def broker_url(rabbitmq_server: tuple[str, Any]) -> Iterator[str]:
    """A vhost of this test run's own, so runs never see each other's messages."""
    with new_vhost(rabbitmq_server, "orgsync-test") as url:
        yield url


@pytest.fixture(scope="session")
def own_vhosts(rabbitmq_server: tuple[str, Any]) -> Iterator[VhostSupply]:
    supply = VhostSupply(rabbitmq_server, "orgsync-own")
    yield supply
    supply.close()


@pytest.fixture
def own_broker_url(own_vhosts: VhostSupply) -> Iterator[str]:
    """A vhost for this test alone: no other test's worker consumes what it publishes, and
    what it forces into a queue stays there."""
    vhost = own_vhosts.take()
    yield f"{own_vhosts.base}/{quote(vhost, safe='')}"
    own_vhosts.delete(vhost)


@pytest.fixture(scope="session")
def keyring() -> Keyring:
    return Keyring([generate_key("test1")])


@pytest.fixture
def settings(database_url: str, broker_url: str, keyring: Keyring) -> Settings:
    return Settings(
        database_url=database_url,
        broker_url=broker_url,
        encryption_keys=keyring.format(),
        log_format="json",
    )


@pytest.fixture
def house(settings: Settings) -> Iterator[House]:
    """The test's composition root on its own database and vhost, closed after the test."""
    with House(settings) as opened:
        yield opened
