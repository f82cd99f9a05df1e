"""Issue 18, findings 1-3: the watchdog kills a thread for real (a StubBroker has no
screening) and shows the worker process is ended so that its supervisor restarts it. The
poison envelopes sent to a real `orgsync worker` are in tests/e2e/test_poison_messages.py."""

from __future__ import annotations

import json
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from orgsync.services.processes import health
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
TIMEOUT = 60


# the thread's death is the point: pytest would report its exception as a warning
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_watchdog_ends_a_worker_process_whose_thread_died_and_healthz_says_so(
    tmp_path: Path,
) -> None:
    broker = StubBroker()
    broker.emit_after("process_boot")

    @dramatiq.actor(broker=broker, max_retries=0)
    def fails() -> None:
        raise ValueError("boom")

    exits: list[int] = []
    watchdog = health.Watchdog(lambda: tmp_path, interval=3600, exit=exits.append)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        assert watchdog.check(worker)
        assert health.healthz(tmp_path)[0] == 200
        # what the screening now refuses, sent past it: dramatiq's isinstance(error, "x")
        fails.send_with_options(throws="x")
        wait_until(lambda: not all(t.is_alive() for t in worker.workers), TIMEOUT, "a thread dead")
        assert not watchdog.check(worker)
    finally:
        worker.stop(timeout=1000)
    assert exits == [health.EXIT_THREADS_DIED]
    status, _, body = health.healthz(tmp_path)
    assert status == 503
    assert "worker threads died" in json.loads(body)["problems"][0]
