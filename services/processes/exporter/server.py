"""`orgsync exporter`'s HTTP server: /metrics from the collector, /healthz from its pings."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry

from orgsync.services.bootstrap import House
from orgsync.services.logs import get_logger
from orgsync.services.processes.exporter.collector import Exporter
from orgsync.services.processes.metrics import Response, prometheus_text, serve
from orgsync.services.settings import Settings

log = get_logger("orgsync.exporter")


def make_server(house: House, host: str, port: int) -> tuple[Any, Exporter]:
    """The HTTP server (not started) and its exporter, whose sessions `house` keeps."""
    exporter = Exporter(house)
    registry = CollectorRegistry()
    registry.register(exporter)

    def healthz() -> Response:
        status = exporter.health()
        healthy = all(value == "ok" for value in status.values())
        body = json.dumps({"ok": healthy, **status}).encode() + b"\n"
        return (200 if healthy else 503), "application/json", body

    routes = {"/metrics": lambda: prometheus_text(registry), "/healthz": healthz}
    return serve(host, port, routes), exporter


def run(settings: Settings, host: str, port: int, stop: threading.Event) -> None:
    # a passive declare of a queue no worker has declared yet is an answer, not a warning
    logging.getLogger("pika.channel").setLevel(logging.ERROR)
    with House(settings) as house:
        server, _ = make_server(house, host, port)
        log.info("exporter", address=f"http://{host}:{server.server_port}/metrics")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            stop.wait()
        finally:
            server.shutdown()
            server.server_close()
