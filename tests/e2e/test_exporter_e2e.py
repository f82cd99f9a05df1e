"""The exporter and the workers' metrics while a 200-account organization is synced.

Discovery runs first with no validator, so `account-discovered` fills up to one message per
account; validators then start (an operator scaling them out) and drain it to zero.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orgsync.pipelines.events import PAGE_MAX
from orgsync.services.bootstrap import House
from orgsync.services.processes import exporter
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import OrgSpec, build_organization
from orgsync.services.use_cases import registering, syncs
from tests.support.cli import orgsync, request_for
from tests.support.waiting import wait_until
from tests.support.workers import worker_env

pytestmark = pytest.mark.e2e
ACCOUNTS = 200
TIMEOUT = 120
FORCED_DEAD_LETTERS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def depth(samples: dict[Any, float], queue: str, kind: str) -> float | None:
    return samples.get(
        ("orgsync_queue_messages", frozenset({"queue": queue, "kind": kind}.items()))
    )


def walk_finished(house: Settings, sync_id: str) -> int | None:
    """How many accounts wait for validation once discovery has walked the organization."""
    progress = syncs.progress(house, sync_id)
    if not (progress["sync"] and progress["sync"]["walked_at"]):
        return None
    return int(progress["stages"].get("discovered", 0))


def discovery_pages(workers: Workers) -> int | None:
    """How many pages discovery sent, once its log line says it is done."""
    lines = [x for x in workers.log_lines() if x.get("stage") == "discovery"]
    return lines[0]["events"] if lines else None


class Workers:
    """`orgsync worker` subprocesses, each with its own metrics port and log."""

    def __init__(self, settings: Settings, aws: SimulatedAws, logs: Path) -> None:
        self.env = worker_env(settings, aws.endpoint_url)
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, stages: str) -> str:
        port = free_port()
        with (self.logs / f"worker-{stages}.log").open("w") as out:
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "orgsync", "worker", "--stages", stages],
                    env=dict(self.env, ORGSYNC_WORKER_METRICS_PORT=str(port)),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        return f"http://127.0.0.1:{port}/metrics"

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for log in self.logs.glob("worker-*.log"):
            for line in log.read_text().splitlines():
                if line.startswith("{"):
                    lines.append(json.loads(line))
        return lines


@pytest.fixture
def own_settings(settings: Settings, rabbitmq_server: tuple[str, Any]) -> Iterator[Settings]:
    """The test's own vhost: the dead letters it forces stay out of every other test's way."""
    base, ctl = rabbitmq_server
    vhost = f"orgsync-exporter-e2e-{uuid.uuid4().hex[:8]}"
    ctl("add_vhost", vhost)
    ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield dataclasses.replace(settings, broker_url=f"{base}/{quote(vhost, safe='')}")
    ctl("delete_vhost", vhost)


@pytest.fixture
def own_house(own_settings: Settings) -> Iterator[House]:
    with House(own_settings) as house:
        yield house


def test_metrics_follow_a_200_account_sync_from_queue_depth_to_account_gauges(
    own_settings: Settings, own_house: House, aws: SimulatedAws, tmp_path: Path
) -> None:
    settings, house = own_settings, own_house
    org = build_organization(aws.endpoint_url, OrgSpec(accounts=ACCOUNTS, suspended=0, excluded=0))
    server, _ = exporter.make_server(house, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    metrics_url = f"http://127.0.0.1:{server.server_port}/metrics"
    workers = Workers(settings, aws, tmp_path)
    seen: list[float] = []  # account-discovered depth at each scrape
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.5):
            seen.append(depth(scrape(metrics_url), "account-discovered", "ready") or 0)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        front = workers.start("registration,discovery")
        request = request_for(org, "metrics")
        registering.submit(house, request)
        verdict = registering.wait_verdict(house, request["request_id"], TIMEOUT)
        assert verdict.accepted and verdict.org_id is not None
        watcher.start()
        sync_id = syncs.latest_sync(house, verdict.org_id)
        assert sync_id is not None
        # with no validator, discovery's messages (a page of accounts each) wait in
        # account-discovered
        walked = wait_until(lambda: walk_finished(house, sync_id), TIMEOUT, "the walk")
        assert walked == ACCOUNTS + 1  # the members and the management account
        pages = wait_until(lambda: discovery_pages(workers), TIMEOUT, "discovery pages")
        assert -(-walked // PAGE_MAX) <= pages < walked
        wait_until(lambda: seen and seen[-1] == pages, TIMEOUT, f"the gauge at {pages}")

        back = workers.start("validation,harvest,reconcile")
        syncs.wait_sync(house, sync_id, TIMEOUT)
        wait_until(lambda: seen[-1] == 0, TIMEOUT, "the gauge back to 0")
        stop.set()
        watcher.join()
        assert max(seen) == pages and seen[-1] == 0

        # the account gauges say what `orgsync accounts --json` lists
        listed = orgsync(settings, aws, "accounts", "--org", "metrics", "--json")
        expected = Counter(a["status"] for a in listed)
        samples = scrape(metrics_url)
        exported = {
            dict(labels)["status"]: value
            for (name, labels), value in samples.items()
            if name == "orgsync_accounts" and dict(labels)["org"] == "metrics"
        }
        assert exported == expected and sum(expected.values()) == ACCOUNTS + 1
        assert all(
            samples[("orgsync_pipeline_waiting", frozenset({"stage": stage}.items()))] == 0
            for stage in ("discovery", "validation", "harvest", "reconcile")
        )

        # dead letters forced into account-discovered.XQ are what the gauge counts
        connection = pika.BlockingConnection(pika.URLParameters(settings.broker_url))
        channel = connection.channel()
        for n in range(FORCED_DEAD_LETTERS):
            channel.basic_publish("", "account-discovered.XQ", json.dumps({"forced": n}).encode())
        connection.close()
        dead = wait_until(
            lambda: depth(scrape(metrics_url), "account-discovered", "dead_lettered"),
            TIMEOUT,
            "the dead-letter gauge",
        )
        assert dead == FORCED_DEAD_LETTERS
        assert depth(scrape(metrics_url), "account-validated", "dead_lettered") == 0

        # each worker invocation serves its stages' counters and histograms
        validated = scrape(back)
        succeeded = (
            "orgsync_stage_messages_total",
            {"stage": "validation", "outcome": "succeeded"},
        )
        assert validated[(succeeded[0], frozenset(succeeded[1].items()))] == pages
        count = validated[
            ("orgsync_stage_duration_seconds_count", frozenset({"stage": "validation"}.items()))
        ]
        assert count == pages
        discovered = scrape(front)
        discovery = ("orgsync_stage_messages_total", {"stage": "discovery", "outcome": "succeeded"})
        assert discovered[(discovery[0], frozenset(discovery[1].items()))] == 1
    finally:
        stop.set()
        workers.stop()
        server.shutdown()

    # one JSON line per event, with the ids, stage, outcome and duration an operator searches
    stage_lines = [line for line in workers.log_lines() if line.get("event") == "stage"]
    required = {"org_id", "sync_id", "stage", "outcome", "duration_ms", "message_id"}
    assert stage_lines and all(required <= line.keys() for line in stage_lines)
    validations = [line for line in stage_lines if line["stage"] == "validation"]
    assert len(validations) == pages
    assert len({a for line in validations for a in line["account_ids"]}) == ACCOUNTS + 1
    assert {line["sync_id"] for line in validations} == {sync_id}
    assert all(line["outcome"] == "done" for line in validations)
