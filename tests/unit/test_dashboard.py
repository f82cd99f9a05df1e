"""The Grafana dashboard asks only for metrics that something exports.

Our names come from the code (the exporter's families, the workers' registry), never from a
list kept here. RabbitMQ's come from its prometheus plugin, whose metric list is
rabbitmq/rabbitmq-server `deps/rabbitmq_prometheus/metrics.md` (Queues and Global Counters
tables); `up` is the series Prometheus itself adds for every target it scrapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from orgsync.services.bootstrap import House
from orgsync.services.processes.exporter import Exporter
from orgsync.services.processes.metrics import WorkerMetrics
from orgsync.services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "orgsync.json"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"

RABBITMQ_PLUGIN = frozenset(
    {
        "rabbitmq_queue_messages",
        "rabbitmq_queue_messages_ready",
        "rabbitmq_queue_messages_unacked",
        "rabbitmq_queue_consumers",
        "rabbitmq_queue_messages_published_total",
        "rabbitmq_connections",
        "rabbitmq_consumers",
        "rabbitmq_global_messages_received_total",
        "rabbitmq_global_messages_acknowledged_total",
        "rabbitmq_global_messages_dead_lettered_rejected_total",
    }
)
PROMETHEUS_ITSELF = frozenset({"up"})
# what Grafana substitutes before Prometheus sees a query
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def series_names(families: list[Metric]) -> set[str]:
    """The names a scrape can show for these families (counters and histograms have suffixes)."""
    names = set()
    for family in families:
        suffixes = SUFFIXES.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names


def exported() -> set[str]:
    registry = CollectorRegistry()
    WorkerMetrics.define(registry)
    exported = Exporter(House(Settings())).describe()
    return series_names(exported) | series_names(list(registry.collect()))


def panels(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in node.get("panels", []):
        yield panel
        yield from panels(panel)


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name or "")
            names.update(m.value for m in node.matchers.matchers if m.name == "__name__")
        return None

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names - {""}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def test_every_metric_the_dashboard_queries_is_exported_by_orgsync_or_rabbitmq(
    dashboard: dict[str, Any],
) -> None:
    allowed = exported() | RABBITMQ_PLUGIN | PROMETHEUS_ITSELF
    queried = {name: expr for expr in expressions(dashboard) for name in metric_names(expr)}
    assert queried, "the dashboard has no queries"
    unknown = {name: expr for name, expr in queried.items() if name not in allowed}
    assert not unknown, f"nothing exports {sorted(unknown)}"
    assert all(name.startswith(("orgsync_", "rabbitmq_", "up")) for name in queried)


def test_the_dashboard_shows_depth_dead_letters_accounts_latency_failures_and_lag(
    dashboard: dict[str, Any],
) -> None:
    queried = {name for expr in expressions(dashboard) for name in metric_names(expr)}
    assert {
        "orgsync_queue_messages",  # depth, delayed and dead letters, by kind
        "orgsync_accounts",
        "orgsync_stage_duration_seconds_bucket",
        "orgsync_stage_messages_total",
        "orgsync_pipeline_oldest_waiting_seconds",
        "orgsync_sync_last_duration_seconds",
    } <= queried
    kinds = " ".join(expressions(dashboard))
    assert 'kind="dead_lettered"' in kinds and 'kind="delayed"' in kinds


def test_an_unknown_metric_would_be_caught() -> None:
    names = metric_names('sum by (queue) (rate(orgsync_no_such_thing_total{queue="x"}[5m]))')
    assert names == {"orgsync_no_such_thing_total"}
    assert not names <= exported()


def test_every_panel_uses_the_provisioned_prometheus_data_source(
    dashboard: dict[str, Any],
) -> None:
    provisioned = {d["uid"] for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    used = {
        source["uid"]
        for panel in panels(dashboard)
        for source in [
            panel.get("datasource"),
            *(t.get("datasource") for t in panel.get("targets", [])),
        ]
        if source
    }
    assert used == provisioned == {"prometheus"}
