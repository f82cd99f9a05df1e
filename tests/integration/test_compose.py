"""compose.yaml against the Compose specification's JSON schema (check-jsonschema, run as a
program), and deploy/compose/generate-env run by `sh`; the checks that read the file alone
are in tests/unit/test_compose.py."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("check_jsonschema") is None:
        message = "check-jsonschema is not installed: pip install -e '.[test]' (make test does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", path],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_yaml_follows_the_compose_specification() -> None:
    result = validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_rejects_a_file_that_breaks_the_specification(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  worker:\n    image: orgsync\n    depends_on: 5\n    scale: x\n")
    result = validate(broken)
    assert result.returncode != 0


def test_generate_env_writes_random_passwords_once_only_its_owner_can_read(
    tmp_path: Path,
) -> None:
    env = tmp_path / ".env"
    script = ROOT / "deploy" / "compose" / "generate-env"
    subprocess.run(["sh", script, env], check=True, capture_output=True, timeout=60)
    first = env.read_text()
    values = dict(
        line.split("=", 1) for line in first.splitlines() if line and not line.startswith("#")
    )
    assert set(values) == {
        "ORGSYNC_POSTGRES_PASSWORD",
        "ORGSYNC_RABBITMQ_USER",
        "ORGSYNC_RABBITMQ_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "ORGSYNC_WEB_PASSWORD",  # the `web` service refuses to start without one
        "ORGSYNC_WEB_SESSION_SECRET",
        "ORGSYNC_API_TOKEN",
        "AWS_REGION",
    }
    secrets = [v for k, v in values.items() if k.endswith(("PASSWORD", "SECRET", "TOKEN"))]
    assert len(set(secrets)) == 6 and all(len(s) >= 32 for s in secrets)
    assert "# AWS_ACCESS_KEY_ID=" in first  # where orgsync's own credentials go, commented
    assert env.stat().st_mode & 0o077 == 0
    other = tmp_path / "other.env"
    subprocess.run(["sh", script, other], check=True, capture_output=True, timeout=60)
    assert other.read_text() != first  # random, not fixed
    subprocess.run(["sh", script, env], check=True, capture_output=True, timeout=60)
    assert env.read_text() == first  # never overwritten
