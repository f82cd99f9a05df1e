"""`orgsync check`: each failure made real (a closed port, a missing database, a wrong RabbitMQ
password, an unknown vhost, no keys, keys that open nothing...), each with its fix, and exit 0
only when everything passes."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from botocore.exceptions import ClientError
from psycopg.conninfo import make_conninfo

from orgsync.pipelines.credentials import Keyring, generate_key
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.use_cases import check, standalone
from tests.support.check import verdicts
from tests.support.registration import Role, registered
from tests.support.workers import worker_env

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[dict[str, Any]]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def failed(settings: Settings) -> dict[str, check.Finding]:
    found = verdicts(settings)
    assert not check.passed(list(found.values()))
    return {name: v for name, v in found.items() if v.ok is False}


def test_everything_in_place_passes_every_check_and_exits_0(ready: Settings) -> None:
    found = verdicts(ready)
    assert {name: v.ok for name, v in found.items()} == {
        "postgresql": True,
        "migrations": True,
        "rabbitmq": True,
        "queues": True,
        "keys": True,
        "aws": True,
    }
    assert check.passed(list(found.values()))
    assert "acting as arn:aws:sts::" in found["aws"].detail


def test_check_prints_one_line_per_dependency_and_json_on_request(
    ready: Settings, aws_env: SimulatedAws
) -> None:
    env = worker_env(ready, aws_env.endpoint_url)
    done = subprocess.run(
        [sys.executable, "-m", "orgsync", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["ok", name] for name in ("postgresql", "migrations", "rabbitmq", "queues", "keys", "aws")
    ]
    assert done.stderr == ""
    done = subprocess.run(
        [sys.executable, "-m", "orgsync", "check", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert [c["ok"] for c in json.loads(done.stdout)] == [True] * 6


def test_a_closed_postgresql_port_fails_with_how_to_start_it(ready: Settings) -> None:
    url = make_conninfo(ready.database_url, port=str(closed_port()))
    found = failed(dataclasses.replace(ready, database_url=url))
    assert set(found) == {"postgresql"}
    assert "unreachable" in found["postgresql"].detail
    assert "start it" in found["postgresql"].fix
    assert verdicts(dataclasses.replace(ready, database_url=url))["migrations"].ok is None


def test_a_missing_database_fails_with_run_orgsync_migrate(ready: Settings) -> None:
    url = make_conninfo(ready.database_url, dbname=f"orgsync_missing_{uuid.uuid4().hex[:8]}")
    found = failed(dataclasses.replace(ready, database_url=url))
    assert set(found) == {"postgresql"}
    assert "no database" in found["postgresql"].detail
    assert "orgsync migrate" in found["postgresql"].fix


def test_a_database_without_the_latest_migrations_fails_with_run_orgsync_migrate(
    ready: Settings, conn: Conn
) -> None:
    conn.execute("DELETE FROM schema_migrations WHERE version = '0002_stuck_syncs'")
    conn.commit()
    found = failed(ready)
    assert set(found) == {"migrations"}
    assert "0002_stuck_syncs" in found["migrations"].detail
    assert found["migrations"].fix == "run `orgsync migrate`"
    org_role = verdicts(ready, "any-org")["org role"]
    assert (org_role.ok, org_role.detail) == (None, "not checked: the migrations failed")


def test_a_wrong_rabbitmq_password_fails_with_check_the_credentials(
    ready: Settings, rabbitmq_user: str
) -> None:
    base, vhost = ready.broker_url.rsplit("/", 1)
    host = base.rsplit("@", 1)[1]
    for password, ok in (("right", True), ("wrong", False)):
        url = f"amqp://{rabbitmq_user}:{password}@{host}/{vhost}"
        found = verdicts(dataclasses.replace(ready, broker_url=url))
        assert found["rabbitmq"].ok is ok, found["rabbitmq"]
    assert "wrong user name or password" in found["rabbitmq"].detail
    assert "check the credentials in ORGSYNC_BROKER_URL" in found["rabbitmq"].fix
    assert found["queues"].ok is None


def test_an_unknown_vhost_fails_with_create_it(ready: Settings) -> None:
    vhost = f"orgsync-absent-{uuid.uuid4().hex[:6]}"
    url = f"{ready.broker_url.rsplit('/', 1)[0]}/{quote(vhost, safe='')}"
    found = failed(dataclasses.replace(ready, broker_url=url))
    assert set(found) == {"rabbitmq"}
    assert f"no vhost {vhost!r}" in found["rabbitmq"].detail
    assert f"rabbitmqctl add_vhost {vhost}" in found["rabbitmq"].fix


def test_queues_no_worker_declared_yet_fail_with_start_a_worker(
    settings: Settings, own_broker_url: str, aws_env: SimulatedAws
) -> None:
    found = failed(dataclasses.replace(settings, broker_url=own_broker_url))
    assert set(found) == {"queues"}
    assert "org-registration" in found["queues"].detail
    assert "orgsync worker" in found["queues"].fix


def test_no_keys_fail_with_generate_them(ready: Settings, tmp_path: Path) -> None:
    no_keys = dataclasses.replace(
        ready, encryption_keys=None, encryption_key_file=tmp_path / "absent"
    )
    found = failed(no_keys)
    assert set(found) == {"keys"}
    assert found["keys"].fix.startswith("run `orgsync keys generate`")  # nothing sealed yet


def test_keys_that_cannot_open_a_stored_credential_fail(
    ready: Settings, conn: Conn, keyring: Keyring
) -> None:
    creds = standalone.AccountCredentials(
        role_arn="arn:aws:iam::123456789012:role/audit",
        session_name="orgsync",
        session_duration=3600,
        external_id=None,
    )
    standalone.add(conn, keyring, "123456789012", creds, "audit")
    conn.commit()
    assert verdicts(ready)["keys"].detail.endswith("open all 1 stored credential(s)")
    other = Keyring([generate_key("other")]).format()
    found = failed(dataclasses.replace(ready, encryption_keys=other))
    assert set(found) == {"keys"}
    assert "cannot open a stored credential" in found["keys"].detail


def test_no_aws_credentials_fail_with_how_to_give_them(
    ready: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    found = failed(ready)
    assert set(found) == {"aws"}
    assert "no usable AWS credentials" in found["aws"].detail
    assert "AWS_PROFILE" in found["aws"].fix


def test_an_aws_profile_that_does_not_exist_fails_the_aws_check(
    ready: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    found = verdicts(ready, "any-org")
    assert found["aws"].ok is False
    assert "ProfileNotFound" in found["aws"].detail or "no-such-profile" in found["aws"].detail
    assert (found["org role"].ok, found["org role"].detail) == (None, "not checked: AWS failed")


def test_check_org_fails_when_the_organization_role_reads_another_organization(
    settings: Settings, conn: Conn, keyring: Keyring
) -> None:
    org_id = registered(conn, keyring)  # o-firstorg01, its role in account 111111111111
    conn.commit()

    def assume_into_another_organization(credentials: Any, use_external_id: bool) -> Role:
        return Role("o-secondorg2")

    aws = SimpleNamespace(assume=assume_into_another_organization)
    found = next(check.check_org(settings, conn, aws, org_id, migrated=True))

    assert (found.name, found.ok) == ("org role", False)
    assert "reads organization o-secondorg2, not o-firstorg01" in found.detail
    assert "111111111111" in found.fix  # the management account whose role it needs


def test_check_org_names_the_likely_causes_of_an_access_denied_organization_role(
    settings: Settings, conn: Conn, keyring: Keyring
) -> None:
    org_id = registered(conn, keyring)
    conn.commit()

    def denied(credentials: Any, use_external_id: bool) -> Role:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AssumeRole")

    found = next(check.check_org(settings, conn, SimpleNamespace(assume=denied), org_id, True))

    assert found.ok is False and "AccessDenied" in found.detail
    for cause in ("does not exist", "trust policy", "external id", "service control policy"):
        assert cause in found.detail
