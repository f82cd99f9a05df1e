"""Issue 18, finding 10: the assumed-role cache of a worker process is bounded and pruned."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from orgsync.pipelines.request_rules import Credentials
from orgsync.services.adapters import aws as aws_module
from orgsync.services.adapters.aws import AssumedRole, Aws
from tests.support.keys import creds


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch) -> Aws:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # no credentials in the environment: boto3 would ask the EC2 metadata service for them
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    aws = Aws()
    lifetime = {"seconds": 600.0}

    def assume(credentials: Credentials, use_external_id: bool = True) -> AssumedRole:
        return AssumedRole(
            organizations=credentials.org_role_arn,
            iam=None,
            expires_at=time.time() + lifetime["seconds"],
        )

    monkeypatch.setattr(aws, "assume", assume)
    aws.lifetime = lifetime  # type: ignore[attr-defined]
    return aws


def org(org_id: str, name: str = "R") -> Any:
    return SimpleNamespace(org_id=org_id, credentials=creds(name))


def test_the_cache_never_holds_more_than_its_bound(
    cache: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aws_module, "MAX_CACHED_ROLES", 50)
    for n in range(500):
        cache.organizations(org(f"o-{n:010d}"))
    assert len(cache._roles) == 50
    assert ("o-0000000499", creds("R")) in cache._roles  # the newest kept


def test_expired_roles_and_replaced_credentials_are_dropped(cache: Aws) -> None:
    cache.lifetime["seconds"] = -1  # type: ignore[attr-defined]
    cache.organizations(org("o-expired000"))
    cache.lifetime["seconds"] = 600  # type: ignore[attr-defined]
    cache.organizations(org("o-aaaaaaaaaa", "Old"))
    assert cache.organizations(org("o-aaaaaaaaaa", "New")).endswith("/New")
    assert list(cache._roles) == [("o-aaaaaaaaaa", creds("New"))]
