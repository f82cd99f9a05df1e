"""Every bad setting a new user can make ends in one line on stderr naming the fix: exit 2,
nothing on stdout (not even with --json), no traceback and no library warnings; --verbose
keeps the structured logs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from orgsync.services.settings import Settings

pytestmark = pytest.mark.integration


def orgsync(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orgsync", *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("orgsync: ")
    return lines[0]


@pytest.fixture
def base_env(settings: Settings) -> dict[str, str]:
    return {
        "ORGSYNC_DATABASE_URL": settings.database_url,
        "ORGSYNC_BROKER_URL": settings.broker_url,
        "ORGSYNC_ENCRYPTION_KEYS": settings.encryption_keys or "",
        "ORGSYNC_LOG_LEVEL": "INFO",
    }


def host_and_vhost(broker_url: str) -> tuple[str, str]:
    base, vhost = broker_url.rsplit("/", 1)
    return base.rsplit("@", 1)[1], vhost


@pytest.mark.parametrize(
    ("name", "value", "command", "says"),
    [
        ("ORGSYNC_DATABASE_URL", "notaurl", "orgs", "is not a PostgreSQL URL: expected post"),
        ("ORGSYNC_BROKER_URL", "garbage", "queues", "is not a RabbitMQ URL: expected amqp://"),
        ("ORGSYNC_LOG_LEVEL", "chatty", "orgs", "expected one of DEBUG, INFO, WARNING"),
    ],
)
def test_a_malformed_setting_is_one_line_naming_it(
    base_env: dict[str, str], name: str, value: str, command: str, says: str
) -> None:
    line = one_line_error(orgsync({**base_env, name: value}, command, "--json"))
    assert line.startswith(f"orgsync: {name}={value!r}") and says in line


@pytest.mark.parametrize("command", [["queues", "--json"], ["worker"]])
def test_a_wrong_rabbitmq_password_says_check_the_credentials(
    base_env: dict[str, str], broker_url: str, rabbitmq_user: str, command: list[str]
) -> None:
    host, vhost = host_and_vhost(broker_url)
    env = {**base_env, "ORGSYNC_BROKER_URL": f"amqp://{rabbitmq_user}:wrong@{host}/{vhost}"}
    line = one_line_error(orgsync(env, *command))
    assert f"refused user {rabbitmq_user!r}: wrong user name or password" in line
    assert "check the credentials in ORGSYNC_BROKER_URL" in line
    assert "unreachable" not in line and "wrong" not in env["ORGSYNC_DATABASE_URL"]


def test_the_right_password_of_the_same_user_works(
    base_env: dict[str, str], broker_url: str, rabbitmq_user: str
) -> None:
    host, vhost = host_and_vhost(broker_url)
    env = {**base_env, "ORGSYNC_BROKER_URL": f"amqp://{rabbitmq_user}:right@{host}/{vhost}"}
    done = orgsync(env, "queues")
    assert done.returncode == 0 and "org-registration" in done.stdout
    assert done.stderr == ""  # no pika warnings about queues not declared yet


@pytest.mark.parametrize(
    "command",
    [["queues"], ["register", "--nickname", "acme", "--no-wait"]],
    ids=["plain AMQP", "publishing through dramatiq"],
)
def test_an_unknown_vhost_says_create_it(
    base_env: dict[str, str], broker_url: str, command: list[str]
) -> None:
    host, _ = host_and_vhost(broker_url)
    vhost = f"orgsync-absent-{uuid.uuid4().hex[:6]}"
    env = {**base_env, "ORGSYNC_BROKER_URL": f"amqp://guest:guest@{host}/{vhost}"}
    line = one_line_error(orgsync(env, *command, "--json"))
    assert f"no vhost {vhost!r}" in line and f"rabbitmqctl add_vhost {vhost}" in line


def test_a_database_that_does_not_exist_yet_says_run_orgsync_migrate(
    base_env: dict[str, str], postgres_url: str
) -> None:
    url = make_conninfo(postgres_url, dbname=f"orgsync_absent_{uuid.uuid4().hex[:8]}")
    line = one_line_error(orgsync({**base_env, "ORGSYNC_DATABASE_URL": url}, "orgs", "--json"))
    assert "has no database" in line and "`orgsync migrate`" in line


def test_a_database_without_tables_says_run_orgsync_migrate(
    base_env: dict[str, str], postgres_url: str
) -> None:
    env = {**base_env, "ORGSYNC_DATABASE_URL": postgres_url}  # exists, never migrated
    line = one_line_error(orgsync(env, "accounts", "--json"))
    assert "has no orgsync tables yet; run `orgsync migrate`" in line


def test_a_closed_postgresql_port_says_how_to_start_it(base_env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**base_env, "ORGSYNC_DATABASE_URL": f"postgresql://root@127.0.0.1:{port}/orgsync"}
    line = one_line_error(orgsync(env, "orgs", "--json"))
    assert "is unreachable" in line and "start it" in line


def test_verbose_keeps_the_structured_logs_before_the_one_line(
    base_env: dict[str, str], broker_url: str, rabbitmq_user: str
) -> None:
    host, vhost = host_and_vhost(broker_url)
    env = {**base_env, "ORGSYNC_BROKER_URL": f"amqp://{rabbitmq_user}:wrong@{host}/{vhost}"}
    done = orgsync(env, "queues", "--json", "--verbose")
    assert done.returncode == 2 and done.stdout == ""
    *logs, last = done.stderr.splitlines()
    assert logs and all(line.startswith("{") for line in logs)
    assert "ACCESS_REFUSED" in done.stderr
    assert last.startswith("orgsync: RabbitMQ at")
    assert "Traceback" not in done.stderr


def test_a_broker_url_at_a_port_that_is_not_amqp_says_so_not_start_it(
    base_env: dict[str, str], postgres_url: str
) -> None:
    params = conninfo_to_dict(postgres_url)  # PostgreSQL answers there, but not AMQP
    where = f"{params.get('host') or '127.0.0.1'}:{params.get('port') or 5432}"
    env = {**base_env, "ORGSYNC_BROKER_URL": f"amqp://guest:guest@{where}/%2F"}
    line = one_line_error(orgsync(env, "queues", "--json"))
    assert f"something at {where} answered, but not as an AMQP server" in line
    assert "start it" not in line and "RabbitMQ's AMQP port" in line
