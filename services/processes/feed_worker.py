"""`orgsync worker --stages events`: the change-event feed alone, without any stage queue."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading

from orgsync.services.bootstrap import WORKER_POOL, House
from orgsync.services.logs import configure as configure_logging
from orgsync.services.settings import Settings


def run(settings: Settings) -> int:
    """The feed's pollers, the outbox sweeper and the events for other systems in this
    process, until SIGTERM."""
    # the worker always logs; the CLI silences commands that exec nothing (commands/cli.py)
    logging.disable(logging.NOTSET)
    configure_logging(settings.log_level, settings.log_format)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with House(settings, pool_size=WORKER_POOL) as house:
        house.start_sweeper()
        house.start_outbound()
        house.start_feed()
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0
