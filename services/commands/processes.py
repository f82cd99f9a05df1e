"""The long-running processes: stage workers, scheduler, exporter, and the demo."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading

from orgsync.pipelines.events import STAGES
from orgsync.services.adapters import keys, queues
from orgsync.services.adapters.broker import check_queues
from orgsync.services.commands.context import Command, Context, duration, whole
from orgsync.services.errors import UserError
from orgsync.services.processes.grace import shutdown_timeout_ms

MAX_PROCESSES = 64
MAX_THREADS = 256  # as ORGSYNC_AWS_CONCURRENCY: past it, threads only wait on each other
MAX_DEMO_ACCOUNTS = 10_000
FEED_STAGE = "events"  # not a RabbitMQ queue: the organizations' SQS change-event queues


def stage_queues() -> dict[str, str]:
    """Each stage `--stages` names, with the queue its workers consume."""
    return {stage.name: stage.queue for stage in STAGES}


def cmd_worker(ctx: Context, args: argparse.Namespace) -> int:
    table = stage_queues()
    names = [*table, FEED_STAGE]
    stages = args.stages.split(",") if args.stages else names
    unknown = [s for s in stages if s not in names]
    if unknown:
        raise UserError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    with ctx.connect():  # fail fast, in one line, when PostgreSQL is down
        pass
    queues.depths(ctx.settings.broker_url)  # and when RabbitMQ is
    queue_stages = [s for s in stages if s != FEED_STAGE]
    # and when the queues are of another type than ORGSYNC_QUEUE_TYPE
    check_queues(ctx.settings, [table[s] for s in queue_stages])
    keys.load_keyring(ctx.settings)
    if not queue_stages:  # the feed alone: no stage queue to consume
        from orgsync.services.processes import feed_worker

        return feed_worker.run(ctx.settings)
    # prefetch only what the threads can run, so one process cannot starve the others
    os.environ.setdefault("dramatiq_queue_prefetch", str(args.threads))
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "orgsync.services.processes." + ("worker_events" if FEED_STAGE in stages else "worker"),
        "--skip-logging",
        "--processes",
        str(args.processes),
        "--threads",
        str(args.threads),
        # each process exits within ORGSYNC_WORKER_GRACE of SIGTERM on its own (processes/grace.py)
        "--worker-shutdown-timeout",
        str(shutdown_timeout_ms(ctx.settings.worker_grace)),
        "--queues",
        *(table[s] for s in queue_stages),
    ]
    os.execv(sys.executable, argv)
    return 0  # not reached


def cmd_scheduler(ctx: Context, args: argparse.Namespace) -> int:
    from orgsync.services.processes import scheduler

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(
        f"scheduler: a sync of each organization every {ctx.settings.sync_interval:.0f} s",
        file=sys.stderr,
    )
    with contextlib.suppress(KeyboardInterrupt):
        scheduler.run(ctx.settings, stop)
    return 0


def cmd_exporter(ctx: Context, args: argparse.Namespace) -> int:
    from orgsync.services.processes import exporter

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    host = args.host or ctx.settings.exporter_host
    port = ctx.settings.exporter_port if args.port is None else args.port
    print(f"exporter: http://{host}:{port}/metrics and /healthz", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        exporter.run(ctx.settings, host, port, stop)
    return 0


def cmd_demo(ctx: Context, args: argparse.Namespace) -> int:
    try:  # the simulated AWS is imported only when asked for; a wheel may not ship it
        from orgsync.services.processes import demo

        # what the simulated AWS starts with, imported there only once it starts
        for module in ("moto", "moto.moto_server.werkzeug_app"):
            importlib.import_module(module)
    except ImportError as error:
        package = (error.name or "moto").split(".")[0]
        raise UserError(
            f"the demo needs the simulated AWS ({package} is not installed):"
            " pip install 'orgsync[sim]', or run `make demo` in a checkout"
        ) from error

    return demo.run(
        ctx.settings,
        accounts=args.accounts,
        processes=args.processes,
        threads=args.threads,
        timeout=args.timeout,
    )


def cmd_web(ctx: Context, args: argparse.Namespace) -> int:
    from orgsync.services.web import server

    if args.hash_password:
        print(server.hash_from_stdin())
        return 0
    return server.run(ctx.settings, args.host, args.port)


def add(command: Command) -> None:
    names = ",".join([*stage_queues(), FEED_STAGE])
    p = command(
        "worker",
        cmd_worker,
        "run the stage workers (RabbitMQ consumers); SIGTERM: stopped within ORGSYNC_WORKER_GRACE",
    )
    p.add_argument("--stages", help=f"comma-separated subset of {names} (default all)")
    add_concurrency(p)
    command("scheduler", cmd_scheduler, "start a sync of every organization each interval")
    p = command("exporter", cmd_exporter, "serve Prometheus /metrics and /healthz for the pipeline")
    p.add_argument("--host", help="address to listen on (default ORGSYNC_EXPORTER_HOST)")
    p.add_argument(
        "--port", type=whole("--port", 0, 65535), help="port (default ORGSYNC_EXPORTER_PORT, 9464)"
    )
    p = command("web", cmd_web, "serve the web console and the HTTP API (/api/)")
    p.add_argument("--host", help="address to listen on (default ORGSYNC_WEB_HOST, 127.0.0.1)")
    p.add_argument(
        "--port", type=whole("--port", 0, 65535), help="port (default ORGSYNC_WEB_PORT, 8080)"
    )
    p.add_argument(
        "--hash-password",
        action="store_true",
        help="print ORGSYNC_WEB_PASSWORD_HASH for the password read from stdin, and exit",
    )
    p = command(
        "demo", cmd_demo, "the whole pipeline against an embedded simulated AWS organization"
    )
    p.add_argument(
        "--accounts",
        type=whole("--accounts", 1, MAX_DEMO_ACCOUNTS),
        default=60,
        help=f"accounts in the organization (default 60, at most {MAX_DEMO_ACCOUNTS})",
    )
    add_concurrency(p)
    p.add_argument(
        "--timeout",
        type=duration("--timeout"),
        default=300,
        metavar="DURATION",
        help="how long each step may take (300, 5m; default 5m)",
    )


def add_concurrency(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--processes",
        type=whole("--processes", 1, MAX_PROCESSES),
        default=1,
        help=f"worker processes (default 1, at most {MAX_PROCESSES})",
    )
    p.add_argument(
        "--threads",
        type=whole("--threads", 1, MAX_THREADS),
        default=8,
        help=f"threads per process (default 8, at most {MAX_THREADS})",
    )
