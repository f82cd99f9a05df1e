"""The contention phase's arithmetic and its inventory check, kept pure (tests/unit tests them).

- `schedule`: when B's re-sync starts, when a worker gets SIGTERM and how many change events
  are sent, scaled to A's size (the issue's figures at 10,000 accounts: B 30 s in, 100 events);
- `floor_seconds`: the least time A's throttle allows its re-sync, from the calls the simulator
  answered A on each throttled API;
- `expected` / `stored` / `compare`: the inventory fact by fact against the simulator, counted
  as the fault harness counts (tests/faults/state.py): lost, duplicated, wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

NOT_ORGANIZATIONS = frozenset({"AssumeRole", "GetCallerIdentity", "SimulatePrincipalPolicy"})
ORG_ID_BADGE = "system.cloud_organization"  # pipelines/badges.py: the badges discovery owns
NICKNAME_BADGE = "system.cloud_organization_nickname"
ORG_PATH_BADGE = "cloud_org_path"
Fact = tuple[str, ...]


def percentile(values: list[float], q: float) -> float | None:
    """Linear between the closest ranks (numpy's default; `statistics` 'inclusive')."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Schedule:
    estimated_floor_s: float  # one ListTagsForResource per account at the throttle's rate
    b_delay_s: float  # A's re-sync start -> B's
    sigterm_at_s: float  # A's re-sync start -> one worker's SIGTERM
    events: int  # change events, one a second, while A's re-sync runs


def schedule(accounts: int, rate: float) -> Schedule:
    estimated = (accounts + 1) / rate
    b_delay = min(30.0, round(0.3 * estimated, 1))
    return Schedule(
        estimated_floor_s=estimated,
        b_delay_s=b_delay,
        sigterm_at_s=round(max(b_delay + 5.0, estimated / 2), 1),
        events=max(5, min(100, int(estimated * 0.8))),
    )


def floor_seconds(counts: dict[str, dict[str, int]], rate: float, burst: float) -> dict[str, Any]:
    """The slowest throttled API's answered calls beyond its burst, at its rate."""
    throttled = counts.get("throttled", {})
    answered = {
        api: n - throttled.get(api, 0)
        for api, n in counts.get("operations", {}).items()
        if api not in NOT_ORGANIZATIONS
    }
    floors = {api: max(0.0, n - burst) / rate for api, n in answered.items()}
    slowest = max(floors, key=floors.__getitem__, default=None)
    return {
        "floor_s": floors[slowest] if slowest else 0.0,
        "api": slowest,
        "answered": answered,
        "throttled": {api: n for api, n in throttled.items() if api in answered},
    }


def expected(
    accounts: Iterable[dict[str, Any]], org_id: str, nickname: str, exclude_prefix: str
) -> dict[Fact, Any]:
    """What the inventory must say of the simulator's `accounts` (`/_sim/orgs/<m>/accounts`),
    for an organization registered with auto_badge on."""
    facts: dict[Fact, Any] = {}
    for account in accounts:
        if account["name"].startswith(exclude_prefix):
            continue
        aid = account["id"]
        status = "suspended" if account["state"] == "SUSPENDED" else "ok"
        facts[("account", aid)] = (account["name"], status, account["path"])
        facts[("badge", aid, ORG_ID_BADGE)] = org_id
        facts[("badge", aid, NICKNAME_BADGE)] = nickname
        facts[("badge", aid, ORG_PATH_BADGE)] = account["path"]
        for key, value in account["tags"].items():
            facts[("tag", aid, key)] = value
            facts[("badge", aid, key)] = value
    return facts


def stored(accounts: Iterable[dict[str, Any]], badges: Iterable[dict[str, Any]]) -> dict[Fact, Any]:
    """The same facts as the database holds them (rows of `accounts` and `badges`)."""
    facts: dict[Fact, Any] = {}
    for row in accounts:
        aid = row["account_id"]
        facts[("account", aid)] = (row["name"], row["status"], row["org_path"])
        for key, value in (row["tags"] or {}).items():
            facts[("tag", aid, key)] = value
    for row in badges:
        facts[("badge", row["account_id"], row["key"])] = row["value"]
    return facts


@dataclass
class Counts:
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0
    checked: int = 0  # facts compared
    examples: list[str] = field(default_factory=list)

    def add(self, other: Counts) -> Counts:
        return Counts(
            self.lost + other.lost,
            self.duplicated + other.duplicated,
            self.wrong + other.wrong,
            self.checked + other.checked,
            (self.examples + other.examples)[:10],
        )


def compare(
    want: dict[Fact, Any], have: dict[Fact, Any], unfinished: int = 0, repeated: int = 0
) -> Counts:
    """lost: wanted and absent, or an account that never reached its last stage; duplicated:
    a badge change applied more than once; wrong: present with another value, or unwanted."""
    counts = Counts(lost=unfinished, duplicated=repeated, checked=len(want))
    for key, value in want.items():
        if key not in have:
            counts.lost += 1
            counts.examples.append(f"lost {key}")
        elif have[key] != value:
            counts.wrong += 1
            counts.examples.append(f"wrong {key}: {have[key]!r} != {value!r}")
    for key in have.keys() - want.keys():
        counts.wrong += 1
        counts.examples.append(f"unexpected {key}: {have[key]!r}")
    if unfinished:
        counts.examples.append(f"{unfinished} account(s) never reached the last stage")
    if repeated:
        counts.examples.append(f"{repeated} badge change(s) applied twice")
    counts.examples = counts.examples[:10]
    return counts
