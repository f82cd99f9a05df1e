"""The exporter's prometheus_client collector: one scrape at a time, both services asked.

A service that does not answer makes `orgsync_exporter_up{service=...}` 0 and its /healthz
entry a reason, never a crash; a kept connection that went away is opened again once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from prometheus_client.core import Metric

from orgsync.services.adapters import db, queues
from orgsync.services.adapters.nodes import describe as describe_broker
from orgsync.services.bootstrap import House
from orgsync.services.logs import get_logger
from orgsync.services.processes.exporter.broker import BROKER_ERRORS, Broker, add_queues
from orgsync.services.processes.exporter.database import QUERIES, Database, Rows, add_database
from orgsync.services.processes.exporter.families import FAMILIES, family

log = get_logger("orgsync.exporter")


@dataclass
class ScrapeCost:
    """What the last scrape did: for `benchmarks/scrape_cost.py` and the logs."""

    seconds: dict[str, float] = field(default_factory=dict)
    sql_queries: int = 0
    sql_round_trips: int = 0
    amqp_calls: int = 0
    http_requests: int = 0


class Exporter:
    """A prometheus_client collector; one scrape at a time, connections kept between them."""

    def __init__(self, house: House) -> None:
        self.settings = settings = house.settings
        self.lock = threading.Lock()
        # kept sessions, not pools: /healthz reports on exactly the connections a scrape uses
        self.database = house.own(
            "exporter-database", lambda: Database(settings.database_url), Database.close
        )
        self.broker = house.own(
            "exporter-broker", lambda: Broker(settings.broker_url), Broker.close
        )
        self.cost = ScrapeCost()

    def _query(self) -> Rows:
        def query() -> Rows:
            results = self.database.read()
            self.cost.sql_queries += len(QUERIES)
            self.cost.sql_round_trips += 1
            return results

        return twice(query, self.database.close, psycopg.OperationalError)

    def _depths(self) -> list[dict[str, Any]]:
        def depths() -> list[dict[str, Any]]:
            rows = self.broker.depths()
            self.cost.amqp_calls += 3 * len(rows)
            return rows

        return twice(depths, self.broker.close, BROKER_ERRORS)

    # ---- the collector -------------------------------------------------------------------

    def describe(self) -> list[Metric]:
        return [family(name) for name in FAMILIES]

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            yield from self._collect()

    def _collect(self) -> Iterator[Metric]:
        self.cost = ScrapeCost()
        out = {name: family(name) for name in FAMILIES}
        up, took = out["orgsync_exporter_up"], out["orgsync_exporter_scrape_duration_seconds"]

        started = time.perf_counter()
        try:
            rows = self._depths()
        except BROKER_ERRORS as error:
            log.warning("exporter_rabbitmq_unavailable", error=str(error) or type(error).__name__)
            up.add_metric(["rabbitmq"], 0)
        else:
            up.add_metric(["rabbitmq"], 1)
            management = self.settings.rabbitmq_management_url
            if management:
                answered = queues.add_management(rows, self.settings.broker_url, management)
                self.cost.http_requests += 1
                up.add_metric(["rabbitmq_management"], int(answered))
            add_queues(out, rows)
        self.cost.seconds["rabbitmq"] = time.perf_counter() - started
        took.add_metric(["rabbitmq"], self.cost.seconds["rabbitmq"])

        started = time.perf_counter()
        try:
            results = self._query()
        except psycopg.Error as error:
            log.warning("exporter_postgresql_unavailable", error=str(error).strip()[:300])
            up.add_metric(["postgresql"], 0)
        else:
            up.add_metric(["postgresql"], 1)
            add_database(out, results)
        self.cost.seconds["postgresql"] = time.perf_counter() - started
        took.add_metric(["postgresql"], self.cost.seconds["postgresql"])
        yield from out.values()

    # ---- /healthz ------------------------------------------------------------------------

    def health(self) -> dict[str, str]:
        """'ok' or why not, for each service."""
        with self.lock:
            status = {"postgresql": "ok", "rabbitmq": "ok"}
            try:
                twice(self.database.ping, self.database.close, psycopg.Error)
            except psycopg.Error as error:
                self.database.close()
                status["postgresql"] = str(db.unavailable(self.settings.database_url, error))
            try:
                twice(self.broker.ping, self.broker.close, BROKER_ERRORS)
            except BROKER_ERRORS as error:
                self.broker.close()
                status["rabbitmq"] = (
                    f"RabbitMQ at {describe_broker(self.settings.broker_url)} is unreachable"
                    f" ({str(error) or type(error).__name__})"
                )
            return status


T = TypeVar("T")


def twice(action: Callable[[], T], reset: Callable[[], None], errors: Any) -> T:
    """`action()`; once more on new connections when a kept one had gone away."""
    try:
        return action()
    except errors:
        reset()
        return action()
