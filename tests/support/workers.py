"""`orgsync worker` in a subprocess against the simulated AWS, and the environment it needs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from tests.support.amqp import purge_queues


def worker_env(settings: Settings, endpoint_url: str) -> dict[str, str]:
    queue_type = {"ORGSYNC_QUEUE_TYPE": settings.queue_type} if settings.queue_type else {}
    return dict(
        os.environ,
        **queue_type,
        ORGSYNC_DATABASE_URL=settings.database_url,
        ORGSYNC_BROKER_URL=settings.broker_url,
        ORGSYNC_ENCRYPTION_KEYS=settings.encryption_keys or "",
        AWS_ENDPOINT_URL=endpoint_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )


@contextmanager
def running_worker(
    settings: Settings, endpoint_url: str, log: Path, threads: int = 8, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`orgsync worker` with every stage, in a subprocess logging to `log`, for the block."""
    command = ["worker", "--processes", "1", "--threads", str(threads)]
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "orgsync", *command],
            env=worker_env(settings, endpoint_url) | env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def empty_queues(broker_url: str) -> Iterator[None]:
    """The run's vhost is shared: the test starts on empty orgsync queues and leaves them
    empty, whatever an earlier test's workers left there (a sync still going, poison messages)."""
    purge_queues(broker_url)
    yield
    purge_queues(broker_url)


@pytest.fixture
def worker(
    settings: Settings, aws: SimulatedAws, tmp_path: Path, empty_queues: None
) -> Iterator[Path]:
    """`orgsync worker` against the simulated AWS, on empty queues; yields the path of its log."""
    log = tmp_path / "worker.log"
    with running_worker(settings, aws.endpoint_url, log):
        yield log
