"""compose.yaml, checked without a Docker engine.

The Compose specification's own JSON schema (vendored in check-jsonschema, a test dependency
in pyproject.toml, as `vendor.compose-spec`) checks the file's shape; the tests below check
what a schema cannot see: dependencies that name real services, files that exist, ports
that agree between compose.yaml, Prometheus and the code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from orgsync.services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # resolves the x-orgsync anchors and merges


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


# ---- issue 18, finding 9: what the stack exposes, and with which credentials --------------------


def test_every_published_port_binds_to_localhost_by_default(compose: dict[str, Any]) -> None:
    published = {
        name: service["ports"]
        for name, service in compose["services"].items()
        if "ports" in service
    }
    assert set(published) >= {"rabbitmq", "exporter", "web", "prometheus", "grafana"}
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("${ORGSYNC_BIND:-127.0.0.1}:"), (name, port)


def test_no_default_credentials_and_no_anonymous_grafana() -> None:
    text = COMPOSE.read_text()
    assert "guest" not in text
    assert "orgsync:orgsync@" not in text and "POSTGRES_PASSWORD: orgsync" not in text
    for variable in (
        "ORGSYNC_POSTGRES_PASSWORD",
        "ORGSYNC_RABBITMQ_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
    ):
        assert f"${{{variable}:?run make compose-env}}" in text  # compose refuses without it
    grafana = yaml.safe_load(text)["services"]["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
