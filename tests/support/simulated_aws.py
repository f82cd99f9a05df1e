"""The simulated AWS (moto in a thread of the test process, over HTTP), emptied for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orgsync.services.testing.moto_aws import SimulatedAws, SimulatedAwsControl


@pytest.fixture(scope="session")
def simulated_aws() -> Iterator[SimulatedAws]:
    with SimulatedAws() as aws:
        yield aws


@pytest.fixture
def aws(simulated_aws: SimulatedAws) -> Iterator[SimulatedAws]:
    """The simulated AWS, emptied, with no faults, for one test (moto's state is global to the
    process, so every test starts from an empty AWS)."""
    SimulatedAwsControl(simulated_aws.endpoint_url).reset()
    simulated_aws.faults.reset()
    simulated_aws.faults.reset_counts()
    yield simulated_aws
