"""Registering an organization and reading the inventory as a user does: through the
use-cases and `python -m orgsync`, against the simulated AWS."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

from orgsync.services.bootstrap import House
from orgsync.services.settings import Settings
from orgsync.services.testing.moto_aws import SimulatedAws
from orgsync.services.testing.sample_org import SampleOrg
from orgsync.services.use_cases import registering, syncs
from tests.support.workers import worker_env

TIMEOUT = 120


def request_for(org: SampleOrg, nickname: str, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": f"test-{uuid.uuid4().hex[:8]}",
        "nickname": nickname,
        "org_role_arn": org.org_role_arn,
        "org_session_name": "orgsync-test",
        "org_session_duration": 3600,
        "member_role_name": org.member_role_name,
        "member_session_name": "orgsync-test-member",
        "member_session_duration": 900,
        "exclude_prefixes": ["sandbox-"],
        "auto_badge": True,
        **extra,
    }


def orgsync(settings: Settings, aws: SimulatedAws, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "orgsync", *args],
        env=worker_env(settings, aws.endpoint_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def register_and_sync(settings: Settings, request: dict[str, Any]) -> str:
    """Register through the queue and wait for the organization's first sync to finish."""
    with House(settings) as house:
        registering.submit(house, request)
        verdict = registering.wait_verdict(house, request["request_id"], TIMEOUT)
        assert verdict.accepted, verdict.reasons
        assert verdict.org_id is not None
        sync_id = syncs.latest_sync(house, verdict.org_id)
        assert sync_id is not None
        syncs.wait_sync(house, sync_id, TIMEOUT)
    return verdict.org_id
