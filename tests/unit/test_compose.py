"""compose.yaml, checked without a Docker engine.

The Compose specification's own JSON schema (vendored in check-jsonschema, a test dependency
in pyproject.toml, as `vendor.compose-spec`) checks the file's shape; the tests below check
what a schema cannot see: dependencies that name real services, files that exist, ports
that agree between compose.yaml, Prometheus and the code.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from orgsync.services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"


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


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # resolves the x-orgsync anchors and merges


def test_compose_yaml_follows_the_compose_specification() -> None:
    result = validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_rejects_a_file_that_breaks_the_specification(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  worker:\n    image: orgsync\n    depends_on: 5\n    scale: x\n")
    result = validate(broken)
    assert result.returncode != 0


def test_every_dependency_names_a_service_and_every_volume_is_declared(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    volumes = set(compose.get("volumes", {}))
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services and dependency != name, (name, dependency)
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} mounts undeclared volume {source}"


def test_the_stack_has_every_part_with_health_checks_and_scalable_workers(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert {
        "postgres",
        "rabbitmq",
        "migrate",
        "keys",
        "worker",
        "scheduler",
        "exporter",
        "prometheus",
        "grafana",
        "demo",
    } <= set(services)
    for name in ("postgres", "rabbitmq", "exporter"):
        assert "healthcheck" in services[name], name
    assert services["migrate"]["restart"] == "no"
    assert services["worker"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    # `--scale worker=N` needs no fixed name and no host port
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    assert services["demo"]["profiles"] == ["demo"]
    assert "--profile" not in str(services["worker"])
    plugins = (ROOT / "deploy" / "rabbitmq" / "enabled_plugins").read_text()
    assert "rabbitmq_management" in plugins and "rabbitmq_prometheus" in plugins


def test_prometheus_scrapes_the_ports_the_services_listen_on(compose: dict[str, Any]) -> None:
    services = compose["services"]
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    exporter_command = services["exporter"]["command"]
    port = exporter_command[exporter_command.index("--port") + 1]
    assert jobs["orgsync-exporter"]["static_configs"][0]["targets"] == [f"exporter:{port}"]
    workers = jobs["orgsync-workers"]["dns_sd_configs"][0]
    environment = services["worker"]["environment"]
    assert workers["port"] == int(environment["ORGSYNC_WORKER_METRICS_PORT"])
    assert "worker" in workers["names"]
    assert environment["ORGSYNC_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert Settings().worker_metrics_port == workers["port"]  # the default agrees too
    assert jobs["rabbitmq"]["static_configs"][0]["targets"] == ["rabbitmq:15692"]
