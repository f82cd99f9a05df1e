"""`orgsync exporter` served in the test's process, and its /metrics read back as samples."""

from __future__ import annotations

import threading
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from orgsync.services.bootstrap import House
from orgsync.services.processes import exporter
from orgsync.services.settings import Settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def start(settings: Settings) -> tuple[str, Any]:
    """The exporter's URL, and its server and house (to shut down and close)."""
    house = House(settings)
    server, _ = exporter.make_server(house, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", (server, house)


def scrape(base: str) -> Samples:
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))
