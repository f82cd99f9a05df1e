"""boto3 for the whole process: one client per role, shared by every thread, never one per account.

Creating a boto3 client costs tens of milliseconds of CPU, so the service's own STS client is
made once, and each organization role is assumed once and its client kept until shortly
before the credentials expire. `AWS_ENDPOINT_URL` (read by botocore itself) points every
client at a simulated AWS.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from orgsync.pipelines.orgs import Organization
from orgsync.pipelines.request_rules import Credentials, queue_region
from orgsync.services.adapters.budget import SERVICE_SCOPE, Budget

# botocore's own retries absorb short bursts of 5xx and network errors; what outlasts them goes
# back to the queue with a longer, jittered backoff. Throttling is not theirs when the rate
# budget is on (services/adapters/budget/hooks.py): its handler sees a throttled answer first and
# retries it after a budget wait, so botocore's retries never storm an organization that asked
# for less.
# These are only defaults: AWS_RETRY_MODE and AWS_MAX_ATTEMPTS (or retry_mode / max_attempts
# in the profile of AWS_CONFIG_FILE) win, each on its own, for what the budget leaves them.
DEFAULT_RETRIES = {"mode": "standard", "max_attempts": 4}
SESSION_RETRY_SETTINGS = {"mode": "retry_mode", "max_attempts": "max_attempts"}
CLIENT_CONFIG = Config(
    # a copy: botocore rewrites a Config's retries dict in place (max_attempts becomes
    # total_max_attempts) when it builds a client
    retries=dict(DEFAULT_RETRIES),  # type: ignore[arg-type]
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=64,
)


def client_config(session: boto3.session.Session) -> Config:
    """Our timeouts and pool size, with our retry defaults only where AWS's own
    configuration (environment or profile) sets nothing."""
    botocore_session = session._session
    retries = {
        key: value
        for key, value in DEFAULT_RETRIES.items()
        if botocore_session.get_config_variable(SESSION_RETRY_SETTINGS[key]) is None
    }
    if retries == DEFAULT_RETRIES:
        return CLIENT_CONFIG
    return CLIENT_CONFIG.merge(Config(retries=retries))  # type: ignore[arg-type]


REFRESH_MARGIN = 300.0  # seconds before expiry at which a role is assumed again

for _name in ("botocore", "boto3", "urllib3"):
    # their DEBUG logs print request parameters and raw STS responses: credentials
    logging.getLogger(_name).setLevel(max(logging.getLogger(_name).level, logging.INFO))


MAX_CACHED_ROLES = 1000  # assumed organization roles a worker process keeps


@dataclass
class AssumedRole:
    organizations: Any
    iam: Any
    expires_at: float
    session: Any = None
    region: str = "us-east-1"
    config: Config | None = None
    queues: dict[str, Any] = field(default_factory=dict)  # queue URL -> SQS client

    def queue(self, url: str) -> Any:
        """An SQS client acting as this role, in the region of the queue at `url`."""
        region = queue_region(url) or self.region
        return self.session.client("sqs", region_name=region, config=self.config)


class Aws:
    """`budget`, when given, paces every call of the clients kept here (not those `assume`
    hands out alone, for a registration's checks)."""

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget
        # AWS_PROFILE, AWS_CONFIG_FILE and the profile's region are boto3's own business
        self._session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)
        self.region = self._session.region_name or "us-east-1"
        self.config = client_config(self._session)
        self.sts = self._session.client("sts", region_name=self.region, config=self.config)
        if budget is not None:
            budget.attach(self.sts, SERVICE_SCOPE)
        self._roles: dict[tuple[str, Credentials], AssumedRole] = {}
        self._lock = threading.Lock()

    def assume(self, creds: Credentials, use_external_id: bool = True) -> AssumedRole:
        """Clients acting as the organization role, assumed with the service's own credentials."""
        params: dict[str, Any] = {
            "RoleArn": creds.org_role_arn,
            "RoleSessionName": creds.org_session_name,
            "DurationSeconds": creds.org_session_duration,
        }
        if use_external_id and creds.external_id:
            params["ExternalId"] = creds.external_id
        issued = self.sts.assume_role(**params)["Credentials"]
        session = boto3.session.Session(
            aws_access_key_id=issued["AccessKeyId"],
            aws_secret_access_key=issued["SecretAccessKey"],
            aws_session_token=issued["SessionToken"],
            region_name=self.region,
        )
        margin = min(REFRESH_MARGIN, creds.org_session_duration / 3)
        return AssumedRole(
            organizations=session.client("organizations", config=self.config),
            iam=session.client("iam", config=self.config),
            expires_at=issued["Expiration"].timestamp() - margin,
            session=session,
            region=self.region,
            config=self.config,
        )

    @property
    def endpoint_url(self) -> str | None:
        """Where the SQS client goes when it is pointed elsewhere than AWS (AWS_ENDPOINT_URL,
        or the profile's endpoint_url): a queue URL under it is accepted at registration."""
        client = self.sqs_client()
        url = str(client.meta.endpoint_url)
        return None if url.endswith((".amazonaws.com", ".amazonaws.com.cn")) else url

    @functools.cache  # noqa: B019 - one Aws per process
    def sqs_client(self) -> Any:
        return self._session.client("sqs", region_name=self.region, config=self.config)

    def organizations(self, org: Organization) -> Any:
        """The organization role's Organizations client, assumed again shortly before it expires."""
        return self.role(org).organizations

    def queue(self, org: Organization, url: str) -> Any:
        """The organization role's SQS client for its change-event queue, kept with the role."""
        role = self.role(org)
        with self._lock:
            if url not in role.queues:
                role.queues[url] = role.queue(url)
            return role.queues[url]

    def role(self, org: Organization) -> AssumedRole:
        key = (org.org_id, org.credentials)
        role = self._roles.get(key)
        if role is None or role.expires_at <= time.time():
            with self._lock:
                role = self._roles.get(key)
                if role is None or role.expires_at <= time.time():
                    role = self.assume(org.credentials)
                    if self.budget is not None:
                        self.budget.attach(role.organizations, org.org_id)
                    self._remember(key, role)
        return role

    def _remember(self, key: tuple[str, Credentials], role: AssumedRole) -> None:
        """Cache `role`, dropping expired roles, the organization's roles under credentials
        it no longer has, and past MAX_CACHED_ROLES the oldest (the cache was never pruned)."""
        now = time.time()
        for old in [
            k
            for k, r in self._roles.items()
            if r.expires_at <= now or (k[0] == key[0] and k != key)
        ]:
            del self._roles[old]
        while len(self._roles) >= MAX_CACHED_ROLES:
            del self._roles[next(iter(self._roles))]  # dicts keep insertion order
        self._roles[key] = role
