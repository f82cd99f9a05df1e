"""The bench's "incremental" phase (issue 26): what a re-sync costs when little or nothing changed.

Run by `bench.py` after its full re-sync, on the same organization, workers and simulator:

1. an incremental sync of the unchanged organization: `wall_s` and `calls_per_account` (every
   AWS call the simulator answered, over the organization's accounts), beside `full_wall_s`,
   the full re-sync's wall time of the same run (targets: <= 0.1 calls per account, <= 1/10 of
   the full sync's time);
2. drift: 1 % of the active accounts changed in the simulator without any event, in three equal
   parts: moved to another OU, renamed, and re-tagged with their last tag read set two days
   back (past ORGSYNC_REHARVEST_AFTER's day); `drift_injected` counts them;
3. one more incremental sync, then every drifted account checked against the simulator (name,
   OU path and its `cloud_org_path` badge, tags and the badge of the changed tag):
   `drift_repaired` counts those fully right, and `drift_examples` shows a few that are not.
"""

from __future__ import annotations

import uuid
from typing import Any

from orgsync.pipelines.badges import ORG_PATH_BADGE
from orgsync.pipelines.resync import INCREMENTAL
from orgsync.services.adapters import db
from orgsync.services.bootstrap import House
from orgsync.services.testing.scale_orgs import ScaleAwsControl
from orgsync.services.use_cases import syncs

DRIFT_SHARE = 0.01
DRIFT_KEY = "bench-drift"
TARGETS = {"calls_per_account": 0.1, "wall_to_full": 0.1}


def run(
    bench: Any,
    house: House,
    endpoint: str,
    workers: Any,
    org_id: str,
    full_wall_s: float,
    timeout: float,
) -> dict[str, Any]:
    sim = ScaleAwsControl(endpoint)
    url = house.settings.database_url

    def incremental() -> float:
        sync_id = syncs.sync(house, org_id, trigger="bench", mode=INCREMENTAL)
        return float(bench.wait_synced(house.settings, sync_id, timeout))

    unchanged = bench.measure(workers, sim, incremental)
    with db.connect(url) as conn:
        accounts = conn.execute(
            "SELECT count(*)::int AS n FROM accounts WHERE org_id = %s AND status <> 'removed'",
            (org_id,),
        ).fetchone()["n"]
    drifted = inject_drift(sim, url, org_id)
    repaired = bench.measure(workers, sim, incremental)
    wrong = check_drift(sim, url, drifted)
    with db.connect(url) as conn:
        size = conn.execute("SELECT pg_database_size(current_database()) AS b").fetchone()["b"]
    calls = unchanged["aws_calls"] / accounts
    ratio = unchanged["wall_s"] / full_wall_s if full_wall_s > 0 else None
    return {
        "calls_per_account": round(calls, 4),
        "wall_s": round(unchanged["wall_s"], 2),
        "full_wall_s": round(full_wall_s, 2),
        "wall_to_full": None if ratio is None else round(ratio, 3),
        "aws_calls": unchanged["aws_calls"],
        "cpu_s": round(unchanged["cpu_s"], 2),
        "drift_injected": len(drifted),
        "drift_repaired": len(drifted) - len(wrong),
        "drift_examples": wrong[:5],
        "drift_sync_wall_s": round(repaired["wall_s"], 2),
        "drift_sync_aws_calls": repaired["aws_calls"],
        "database_mb": round(size / 2**20, 1),
        "targets": TARGETS,
        "met": {
            "calls_per_account": calls <= TARGETS["calls_per_account"],
            "wall_to_full": ratio is not None and ratio <= TARGETS["wall_to_full"],
            "drift_repaired": not wrong,
        },
    }


def inject_drift(sim: ScaleAwsControl, url: str, org_id: str) -> dict[str, dict[str, Any]]:
    """1 % of the active accounts moved, renamed or re-tagged in the simulator, no event; what
    each should look like afterwards, by account id."""
    with db.connect(url) as conn:
        rows = conn.execute(
            "SELECT account_id, parent_id, org_path FROM accounts WHERE org_id = %s"
            " AND status = 'ok' AND parent_id IS NOT NULL ORDER BY account_id",
            (org_id,),
        ).fetchall()
    parents = sorted({(r["parent_id"], r["org_path"]) for r in rows})
    count = max(3, round(len(rows) * DRIFT_SHARE))
    chosen = rows[:: max(1, len(rows) // count)][:count]
    drifted: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(chosen):
        account = row["account_id"]
        own = parents.index((row["parent_id"], row["org_path"]))
        target = parents[(own + 1) % len(parents)][0]
        if i % 3 == 0 and target != row["parent_id"]:  # moved to the next parent along
            drifted[account] = sim.edit_account(account, parent_id=target)
        elif i % 3 != 2:
            drifted[account] = sim.edit_account(account, name=f"renamed-{account}")
        else:
            value = uuid.uuid4().hex[:8]
            tags = sim.tag(account, {DRIFT_KEY: value})["tags"]
            drifted[account] = {"tags": tags}
    retagged = [a for a, want in drifted.items() if "tags" in want]
    with db.connect(url) as conn:
        conn.execute(
            "UPDATE accounts SET tags_read_at = now() - interval '2 days'"
            " WHERE account_id = ANY(%s)",
            (retagged,),
        )
    return drifted


def check_drift(
    sim: ScaleAwsControl, url: str, drifted: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The drifted accounts that the inventory does not show as the simulator has them."""
    with db.connect(url) as conn:
        rows = conn.execute(
            "SELECT a.account_id, a.name, a.org_path, a.tags, coalesce((SELECT jsonb_object_agg("
            "b.key, b.value) FROM badges b WHERE b.account_id = a.account_id), '{}') AS badges"
            " FROM accounts a WHERE a.account_id = ANY(%s)",
            (list(drifted),),
        ).fetchall()
    stored = {r["account_id"]: r for r in rows}
    wrong = []
    for account, want in drifted.items():
        row = stored.get(account)
        problems = []
        if row is None:
            problems.append("missing")
        elif "tags" in want:
            if row["tags"] != want["tags"]:
                problems.append(f"tags {row['tags']} != {want['tags']}")
            if row["badges"].get(DRIFT_KEY) != want["tags"][DRIFT_KEY]:
                problems.append(f"badge {DRIFT_KEY}={row['badges'].get(DRIFT_KEY)}")
        else:
            if row["name"] != want["name"]:
                problems.append(f"name {row['name']!r} != {want['name']!r}")
            if row["org_path"] != want["path"]:
                problems.append(f"path {row['org_path']!r} != {want['path']!r}")
            if row["badges"].get(ORG_PATH_BADGE) != want["path"]:
                problems.append(f"badge {ORG_PATH_BADGE}={row['badges'].get(ORG_PATH_BADGE)}")
        if problems:
            wrong.append({"account": account, "problems": problems})
    return wrong


def lines(result: dict[str, Any]) -> list[str]:
    """The phase's figures for bench.py's printout."""
    met = result["met"]

    def mark(key: str) -> str:
        return "met" if met[key] else "NOT met"

    unchanged = (
        f"incremental sync, unchanged: {result['wall_s']:.2f} s, full re-sync"
        f" {result['full_wall_s']:.2f} s: {result['wall_to_full']}x"
        f" (<= 0.1x: {mark('wall_to_full')}); {result['calls_per_account']:.3f} AWS calls"
        f" per account (<= 0.1: {mark('calls_per_account')})"
    )
    drift = (
        f"incremental sync after drift: {result['drift_repaired']} of"
        f" {result['drift_injected']} drifted accounts repaired ({mark('drift_repaired')}),"
        f" {result['drift_sync_wall_s']:.2f} s; database {result['database_mb']} MB"
    )
    return [unchanged, drift]
