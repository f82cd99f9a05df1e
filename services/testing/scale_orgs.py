"""Several organizations behind one scale simulator, each with throttle buckets of its own.

AWS throttles Organizations calls per management account, so one endpoint serving several
organizations is what it takes to measure whether one organization holds up another. Each
organization (a `scale_aws.ScaleOrg`) is known by its management account; a call belongs to the
organization of the account that makes it (the session token's account), or, for an AssumeRole
made with base credentials, to the organization of the account whose role it assumes. A call
nobody claims belongs to the first organization, which is what a single-organization run sees.

Per organization, at run time: `rates` (API -> calls/s and burst) give every (API, calling
account) of that organization a token bucket; `*` stands for every *Organizations* API not
named (STS and IAM are throttled only where named, since AWS meters them apart), and
`extra_latency_ms` slows that organization's answers down on top of the global latency.
Calls and throttled answers are counted per organization and API.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from orgsync.services.testing.moto_aws import SimulatedAwsControl, _parse_rates

Rates = dict[str, tuple[float, float]]  # API (or *) -> (calls/s, burst)


class Org(Protocol):
    """What the directory needs of an organization (`scale_aws.ScaleOrg` has it)."""

    @property
    def management_account_id(self) -> str: ...

    def index_of(self, account_id: str) -> int | None: ...


def parse_rates(value: object) -> Rates:
    """`{"*": [20, 20], "ListParents": 5}` (a bare number is its own burst); ValueError if bad.
    The same rules as the global `rates` of the `/_sim/faults` control plane."""
    return _parse_rates(value)


@dataclass
class RateBuckets:
    """Token buckets per (API, calling account), refilled at each API's rate."""

    rates: Rates = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def rate_for(self, api: str, organizations_api: bool) -> tuple[float, float] | None:
        if api in self.rates:
            return self.rates[api]
        return self.rates.get("*") if organizations_api else None

    def take(self, api: str, caller: str, organizations_api: bool) -> bool:
        """Take a token for one call; False when the bucket was empty (the call is throttled)."""
        rate = self.rate_for(api, organizations_api)
        if rate is None:
            return True
        per_second, burst = rate
        now = self.clock()
        tokens, at = self._buckets.get((api, caller), (burst, now))
        tokens = min(burst, tokens + (now - at) * per_second)
        taken = tokens >= 1
        self._buckets[(api, caller)] = (tokens - 1 if taken else tokens, now)
        return taken


@dataclass
class Tenant:
    """One organization's throttle, latency and counters; the directory's lock guards them."""

    org: Org
    buckets: RateBuckets
    extra_latency_ms: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)

    def settings(self) -> dict[str, Any]:
        return {
            "rates": {api: list(pair) for api, pair in self.buckets.rates.items()},
            "extra_latency_ms": self.extra_latency_ms,
        }

    def counts(self) -> dict[str, dict[str, int]]:
        return {"operations": dict(self.calls), "throttled": dict(self.throttled)}


@dataclass(frozen=True)
class Decision:
    org_index: int
    extra_latency_s: float
    throttled: bool


class Directory:
    """The organizations of one simulator, by management account and by member account."""

    def __init__(self, orgs: Sequence[Org], clock: Callable[[], float] = time.monotonic) -> None:
        if not orgs:
            raise ValueError("a simulator serves at least one organization")
        managements = [o.management_account_id for o in orgs]
        if len(set(managements)) != len(managements):
            raise ValueError(f"two organizations share a management account: {managements}")
        self.orgs = list(orgs)
        self._lock = threading.Lock()
        self._clock = clock
        self._tenants = [Tenant(o, RateBuckets(clock=clock)) for o in orgs]
        self._by_management = {m: i for i, m in enumerate(managements)}

    def index_of(self, account_id: str | None) -> int | None:
        """The organization holding `account_id` (its management account or a member)."""
        if not account_id:
            return None
        if account_id in self._by_management:
            return self._by_management[account_id]
        for i, org in enumerate(self.orgs):
            if org.index_of(account_id) is not None:
                return i
        return None

    def route(self, caller: str | None, target: str | None = None) -> int:
        """Whose call this is: the caller's organization, else the target's, else the first."""
        for account in (caller, target):
            found = self.index_of(account)
            if found is not None:
                return found
        return 0

    def by_management(self, management_account_id: str) -> int:
        try:
            return self._by_management[management_account_id]
        except KeyError:
            message = f"no organization has management account {management_account_id}"
            raise ValueError(message) from None

    def decide(self, org_index: int, api: str, caller: str, organizations_api: bool) -> Decision:
        """Count one call of the organization's and take a token from its bucket."""
        with self._lock:
            tenant = self._tenants[org_index]
            tenant.calls[api] += 1
            allowed = tenant.buckets.take(api, caller, organizations_api)
            if not allowed:
                tenant.throttled[api] += 1
            return Decision(org_index, tenant.extra_latency_ms / 1000, not allowed)

    def configure(self, org_index: int, settings: dict[str, Any]) -> dict[str, Any]:
        """Replace the organization's `rates` and/or `extra_latency_ms`; buckets start full."""
        unknown = set(settings) - {"rates", "extra_latency_ms"}
        if unknown:
            raise ValueError(f"unknown organization setting(s) {sorted(unknown)}")
        rates = parse_rates(settings["rates"]) if "rates" in settings else None
        latency = settings.get("extra_latency_ms")
        if latency is not None and (
            isinstance(latency, bool) or not isinstance(latency, int | float) or not latency >= 0
        ):
            raise ValueError("extra_latency_ms must be a number >= 0")
        with self._lock:
            tenant = self._tenants[org_index]
            if rates is not None:
                tenant.buckets = RateBuckets(rates, self._clock)
            if latency is not None:
                tenant.extra_latency_ms = float(latency)
            return tenant.settings()

    def reset(self) -> None:
        """Every organization unthrottled, at the global latency, its counts cleared."""
        with self._lock:
            self._tenants = [Tenant(o, RateBuckets(clock=self._clock)) for o in self.orgs]

    def reset_counts(self) -> None:
        with self._lock:
            for tenant in self._tenants:
                tenant.calls.clear()
                tenant.throttled.clear()

    def state(self, org_index: int) -> dict[str, Any]:
        with self._lock:
            tenant = self._tenants[org_index]
            return {**tenant.settings(), "counts": tenant.counts()}


class ScaleAwsControl(SimulatedAwsControl):
    """`SimulatedAwsControl` plus the several-organization routes of the scale simulator."""

    def orgs(self) -> list[dict[str, Any]]:
        """Each organization: ids, roles, size, its throttle settings and its counts."""
        return cast(list[dict[str, Any]], self._call("GET", "/_sim/orgs"))

    def org(self, management_account_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", f"/_sim/orgs/{management_account_id}"))

    def accounts(self, management_account_id: str) -> list[dict[str, Any]]:
        """Every account of the organization: id, name, path, state and tags as they are now."""
        path = f"/_sim/orgs/{management_account_id}/accounts"
        return cast(list[dict[str, Any]], self._call("GET", path))

    def set_org(self, management_account_id: str, **settings: Any) -> dict[str, Any]:
        """Set one organization's `rates` ({} unthrottles it) and/or `extra_latency_ms`."""
        body = json.dumps(settings).encode()
        path = f"/_sim/orgs/{management_account_id}"
        return cast(dict[str, Any], self._call("POST", path, body))

    def edit_account(
        self, account_id: str, *, name: str | None = None, parent_id: str | None = None
    ) -> dict[str, Any]:
        """Rename and/or move an account (into an OU or root id) in whichever organization
        holds it, with no event; returns its name and path now."""
        body = json.dumps({"account_id": account_id, "name": name, "parent_id": parent_id})
        return cast(dict[str, Any], self._call("POST", "/_sim/accounts", body.encode()))

    def tag(
        self, account_id: str, tags: dict[str, str], remove: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Change an account's tags in whichever organization holds it; returns
        `{"management_account_id", "tags"}` (the CloudTrail record names the management)."""
        body = json.dumps({"account_id": account_id, "set": tags, "remove": list(remove)})
        return cast(dict[str, Any], self._call("POST", "/_sim/tags", body.encode()))
