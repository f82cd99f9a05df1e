"""`orgsync check` on settings under which every check passes, with this process's boto3
pointed at the simulated AWS (fixtures, registered in tests/conftest.py)."""

from __future__ import annotations

import pytest

from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.use_cases import check
from tests.support.amqp import declare_queues
from tests.support.workers import worker_env


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, aws: SimulatedAws) -> SimulatedAws:
    """AWS's variables pointing this process's boto3 at the simulated AWS."""
    for name, value in worker_env(Settings(), aws.endpoint_url).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    return aws


@pytest.fixture
def ready(settings: Settings, aws_env: SimulatedAws) -> Settings:
    """Settings under which every check passes: migrated, queues declared, keys, AWS."""
    declare_queues(settings.broker_url)  # the run's vhost, where any worker declares them too
    return settings


def verdicts(settings: Settings, org: str | None = None) -> dict[str, check.Finding]:
    return {v.name: v for v in check.run(settings, org)}
