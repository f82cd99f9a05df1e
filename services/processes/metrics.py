"""The workers' own metrics: processing time, successes, retries and failures of every stage.

Design. Every worker process counts into prometheus_client's multiprocess files, in a
directory of its `orgsync worker` invocation's own; one exposition process per invocation,
forked by dramatiq's CLI from this middleware's `forks` (as dramatiq's Prometheus middleware
does), serves their sum on ORGSYNC_WORKER_METRICS_PORT. Prometheus scrapes each worker
container (DNS service discovery finds every `--scale` replica) and PromQL's `sum` adds the
containers up. Nothing is shared between containers: pids repeat from one container to the
next, so multiprocess files must not.

Retries are counted once, at the delivery that failed and after dramatiq's `Retries` has
decided its fate: this middleware sits before `Retries`, and dramatiq runs `after_*` hooks in
reverse order. dramatiq's own Prometheus middleware counts at enqueue time instead, so one
retry shows twice there (going into `Q.DQ`, then coming back to `Q`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dramatiq
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from orgsync.pipelines.events import STAGE_BY_QUEUE
from orgsync.services.logs import configure as configure_logging
from orgsync.services.logs import get_logger
from orgsync.services.processes import health
from orgsync.services.settings import Settings

log = get_logger("orgsync.metrics")


# a validation is an AssumeRole (tens of ms); a discovery walks a whole organization (minutes)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600)
OUTCOMES = ("succeeded", "retried", "failed", "skipped")


@dataclass(frozen=True)
class WorkerMetrics:
    messages: Counter
    duration: Histogram
    in_progress: Gauge

    @classmethod
    def define(cls, registry: CollectorRegistry | None = None) -> WorkerMetrics:
        """The worker metrics, registered in `registry` (None: in no registry)."""
        return cls(
            messages=Counter(
                "orgsync_stage_messages",
                "Messages a stage has handled, by outcome: succeeded, retried (will run again "
                "from Q.DQ), failed (dead-lettered to Q.XQ), skipped (too old).",
                ["stage", "outcome"],
                registry=registry,
            ),
            duration=Histogram(
                "orgsync_stage_duration_seconds",
                "Time a stage spent on one message, whatever its outcome.",
                ["stage"],
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            in_progress=Gauge(
                "orgsync_stage_in_progress",
                "Messages a stage is handling right now.",
                ["stage"],
                registry=registry,
                multiprocess_mode="livesum",
            ),
        )


def stage_of(message: dramatiq.Message[Any]) -> str:
    stage = STAGE_BY_QUEUE.get(message.queue_name.removesuffix(".DQ"))
    return stage.name if stage else message.queue_name


class StageMetrics(dramatiq.Middleware):
    """Counts every message each stage handles; add it with `before=Retries`."""

    def __init__(self, settings: Settings) -> None:
        self.port = settings.worker_metrics_port
        self.base = settings.worker_metrics_dir
        self.metrics: WorkerMetrics | None = None
        self.local = threading.local()

    @property
    def forks(self) -> list[Callable[[], int]]:
        return [serve_worker_metrics] if self.port else []

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        if not self.port:
            return
        directory = run_directory(self.base)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        # unannotated in prometheus_client
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        self.metrics = WorkerMetrics.define()
        # every series exists from the start, at 0: rate() sees a stage's first retry or skip
        for stage in STAGE_BY_QUEUE.values():
            self.metrics.duration.labels(stage.name)
            self.metrics.in_progress.labels(stage.name)
            for outcome in OUTCOMES:
                self.metrics.messages.labels(stage.name, outcome)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.metrics is not None:
            # unannotated in prometheus_client
            prometheus_multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        if self.metrics is not None:
            self.local.started = time.perf_counter()
            self.metrics.in_progress.labels(stage_of(message)).inc()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if message.failed:
            outcome = "failed"
            log.warning(
                "message_failed",
                stage=stage_of(message),
                queue=message.queue_name,
                message_id=message.message_id,
                retries=message.options.get("retries", 0),
                error=type(exception).__name__ if exception else None,
            )
        else:
            outcome = "retried" if exception is not None else "succeeded"
        self._count(message, outcome)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._count(message, "skipped")

    def _count(self, message: Any, outcome: str) -> None:
        if self.metrics is None:
            return
        stage = stage_of(message)
        started, self.local.started = getattr(self.local, "started", None), None
        if started is not None:  # None: skipped (too old) before it reached this middleware
            self.metrics.duration.labels(stage).observe(time.perf_counter() - started)
            self.metrics.in_progress.labels(stage).dec()
        self.metrics.messages.labels(stage, outcome).inc()


# ---- one directory of multiprocess files per `orgsync worker` invocation ---------------------


def _started(pid: int) -> str:
    """The process's start time (clock ticks after boot): a pid and it name one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "0"
    return stat.rsplit(")", 1)[1].split()[19]


def run_directory(base: Path) -> Path:
    """This invocation's directory (dramatiq's CLI master is every worker's parent), made
    fresh; those of invocations that have ended are removed."""
    master = os.getppid()
    name = f"run-{master}-{_started(master)}"
    base.mkdir(parents=True, exist_ok=True)
    for old in base.glob("run-*"):
        if old.name != name and not _alive(old.name):
            shutil.rmtree(old, ignore_errors=True)
    directory = base / name
    directory.mkdir(exist_ok=True)
    return directory


def _alive(name: str) -> bool:
    try:
        _, pid, started = name.split("-", 2)
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return _started(int(pid)) == started


# ---- HTTP ------------------------------------------------------------------------------------

Response = tuple[int, str, bytes]


def serve(host: str, port: int, routes: dict[str, Callable[[], Response]]) -> ThreadingHTTPServer:
    """An HTTP server answering GET on `routes`; the caller runs `serve_forever()`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path.split("?", 1)[0])
            status, content_type, body = (
                route() if route else (404, "text/plain", b"not found: try /metrics or /healthz\n")
            )
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not news

    ThreadingHTTPServer.allow_reuse_address = True
    return ThreadingHTTPServer((host, port), Handler)


def prometheus_text(registry: CollectorRegistry) -> Response:
    return 200, CONTENT_TYPE_LATEST, generate_latest(registry)


def serve_worker_metrics() -> int:
    """dramatiq's CLI runs this in a process of its own, once per `orgsync worker`."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    directory = run_directory(settings.worker_metrics_dir)
    registry = CollectorRegistry()
    # unannotated in prometheus_client
    prometheus_multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    try:
        server = serve(
            settings.worker_metrics_host,
            settings.worker_metrics_port,
            {
                "/metrics": lambda: prometheus_text(registry),
                "/healthz": lambda: health.healthz(directory),
            },
        )
    except OSError as error:
        # the workers work on without it; only their metrics are missing
        log.warning(
            "worker_metrics_unavailable",
            address=f"{settings.worker_metrics_host}:{settings.worker_metrics_port}",
            error=str(error),
        )
        return 0
    log.info("worker_metrics", address=f"{settings.worker_metrics_host}:{server.server_port}")
    threading.Thread(target=_exit_with_parent, args=(server,), daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def _exit_with_parent(server: ThreadingHTTPServer) -> None:
    """Stop serving when dramatiq's master is gone (killed, so it could not stop us)."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(1)
    server.shutdown()
