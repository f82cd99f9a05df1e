"""The "incremental" run of the fault harness (issue 26): a full sync first, then the stored
inventory drifted the ways missed change events leave it, then one incremental sync, which must
end exactly as the clean run did (0 lost, 0 duplicated, 0 wrong).

The drift is written into PostgreSQL rather than moto: to orgsync, a change AWS made without an
event and a stored row that no longer says what AWS says are the same thing, and moto's
organization must stay as every other run of the harness sees it.
"""

from __future__ import annotations

from orgsync.services.adapters import db
from orgsync.services.use_cases import syncs
from tests.faults.harness import Harness, Run
from tests.faults.workers import Supervisor

# (what drifted, how many accounts, the statement that makes the stored row say otherwise)
DRIFTS = [
    ("moved", 4, "UPDATE accounts SET org_path = 'Root/Elsewhere', parent_id = 'ou-elsewhere'"),
    ("renamed", 4, "UPDATE accounts SET name = 'stale name', email = 'stale@example.com'"),
    (
        "re-tagged long ago",
        4,
        'UPDATE accounts SET tags = \'{"stale": "tag"}\','
        " tags_read_at = now() - interval '2 days'",
    ),
    ("validation failed", 3, "UPDATE accounts SET status = 'assume_role_failed'"),
    ("validated long ago", 3, "UPDATE accounts SET validated_at = now() - interval '2 days'"),
    (
        "missed its join",
        3,
        "UPDATE accounts SET status = 'removed', status_reason = 'left_organization'",
    ),
]
DRIFTED = sum(n for _, n, _ in DRIFTS)


def full_sync_then_drift(harness: Harness, run: Run) -> None:
    """A full sync of the run's organization to its end, then DRIFTS applied to its accounts."""
    assert run.house is not None
    run.sync_id = syncs.sync(run.house, run.org_id, trigger="faults:before-drift")
    with Supervisor(run.env, harness.base / f"{run.name}-full.log"):
        assert harness.settle(run), "the full sync before the drift did not settle"
    with db.connect(run.settings.database_url) as conn:
        ids = [
            row["account_id"]
            for row in conn.execute(
                "SELECT account_id FROM accounts WHERE org_id = %s AND status = 'ok'"
                " ORDER BY account_id",
                (run.org_id,),
            )
        ]
        step = max(1, len(ids) // DRIFTED)
        chosen = iter(ids[::step])
        for _, count, statement in DRIFTS:
            accounts = [next(chosen) for _ in range(count)]
            conn.execute(f"{statement} WHERE account_id = ANY(%s)", (accounts,))
    run.notes.append(f"{DRIFTED} accounts drifted ({', '.join(n for n, _, _ in DRIFTS)})")
    run.synced_s = None
