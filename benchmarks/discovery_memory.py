"""How much memory discovery needs for a large organization (a script, not a test).

A fake Organizations client serves a generated organization page by page, 20 items a page as
AWS does, without ever holding the organization itself: every page is computed from its
token. Discovery walks it and judges every account; with ORGSYNC_DATABASE_URL set, each page
is also loaded into a scratch database (created on that server, dropped afterwards). Prints
the peak resident set (ru_maxrss), tracemalloc's peak and the time.

    .venv/bin/python benchmarks/discovery_memory.py [--accounts 20000] [--levels 3] [--fanout 10]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orgsync.pipelines import discovery
from orgsync.pipelines.credentials import Keyring, generate_key
from orgsync.pipelines.events import OrgRegistered
from orgsync.pipelines.orgs import load_organization
from orgsync.pipelines.registration import store_organization
from orgsync.pipelines.request_rules import Credentials, Filters
from orgsync.pipelines.stage import Deps

ROOT = "r-bench"
ORG_ID = "o-benchmark0001"


class GeneratedOrganization:
    """`levels` of OUs under one root, `fanout` per parent; accounts spread over the leaves.

    OU ids encode their position (ou-bench-<i>-<j>-...), so children and accounts are derived,
    not stored. Tokens are item offsets, as opaque to discovery as AWS's own."""

    def __init__(self, accounts: int, levels: int, fanout: int) -> None:
        self.accounts, self.levels, self.fanout = accounts, levels, fanout
        self.leaves = fanout**levels
        self.calls: Counter[str] = Counter()

    def list_roots(self, **params: Any) -> dict[str, Any]:
        self.calls["ListRoots"] += 1
        return {"Roots": [{"Id": ROOT, "Name": "Root"}]}

    def list_organizational_units_for_parent(self, **params: Any) -> dict[str, Any]:
        self.calls["ListOrganizationalUnitsForParent"] += 1
        position = self._position(params["ParentId"])
        count = self.fanout if len(position) < self.levels else 0
        return self._page(
            params,
            "OrganizationalUnits",
            count,
            lambda i: {"Id": self._ou_id((*position, i)), "Name": f"OU{len(position)}x{i}"},
        )

    def list_accounts_for_parent(self, **params: Any) -> dict[str, Any]:
        self.calls["ListAccountsForParent"] += 1
        position = self._position(params["ParentId"])
        if len(position) < self.levels:
            return self._page(params, "Accounts", 0, lambda i: {})
        leaf = 0
        for index in position:
            leaf = leaf * self.fanout + index
        first = leaf * self.accounts // self.leaves
        count = (leaf + 1) * self.accounts // self.leaves - first
        return self._page(params, "Accounts", count, lambda i: self._account(first + i))

    def _page(self, params: dict[str, Any], key: str, count: int, item: Any) -> dict[str, Any]:
        start = int(params.get("NextToken") or 0)
        end = min(count, start + int(params.get("MaxResults") or 20))
        page: dict[str, Any] = {key: [item(i) for i in range(start, end)]}
        if end < count:
            page["NextToken"] = str(end)
        return page

    @staticmethod
    def _account(n: int) -> dict[str, Any]:
        name = f"{'sandbox' if n % 50 == 0 else 'acct'}-{n:06d}"
        return {
            "Id": f"{100000000000 + n}",
            "Name": name,
            "Email": f"aws+{name}@example.com",
            "State": "SUSPENDED" if n % 97 == 0 else "ACTIVE",
            "Status": "SUSPENDED" if n % 97 == 0 else "ACTIVE",
            "Arn": f"arn:aws:organizations::123456789012:account/{ORG_ID}/{100000000000 + n}",
            "JoinedMethod": "CREATED",
        }

    @staticmethod
    def _ou_id(position: tuple[int, ...]) -> str:
        return "ou-bench-" + "-".join(map(str, position))

    @staticmethod
    def _position(parent_id: str) -> tuple[int, ...]:
        if parent_id == ROOT:
            return ()
        return tuple(int(part) for part in parent_id.removeprefix("ou-bench-").split("-"))


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from orgsync.services.adapters import db

    url = make_conninfo(server_url, dbname=f"orgsync_bench_{uuid.uuid4().hex[:8]}")
    db.migrate(url)
    try:
        yield url
    finally:
        with db.connect(make_conninfo(server_url, dbname="postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{conninfo_to_dict(url)["dbname"]}"')


def run(client: GeneratedOrganization, database_url: str | None) -> Counter[str]:
    filters = Filters(exclude_prefixes=("sandbox-",))
    tally: Counter[str] = Counter()
    if database_url is None:
        for batch in discovery.walk(client, filters.limit_ou_ids):
            for account in batch:
                tally[discovery.judge(account, filters).action] += 1
        return tally
    from orgsync.services.adapters import db

    keyring = Keyring([generate_key("bench")])
    with db.connect(database_url) as conn:
        insert_organization(conn, keyring, filters)
        org = load_organization(conn, keyring, ORG_ID)
        assert org is not None
        sync_id = str(uuid.uuid4())
        conn.execute(
            "INSERT INTO syncs (sync_id, org_id, trigger) VALUES (%s, %s, 'bench')",
            (sync_id, ORG_ID),
        )
        conn.commit()
    deps = Deps(
        connect=lambda: db.connect(database_url),
        keyring=keyring,
        organizations=lambda org: client,
        sts=None,
    )
    result = discovery.discover(deps, OrgRegistered(org_id=ORG_ID, sync_id=sync_id))
    tally.update({k: v for k, v in result.counts["counts"].items() if isinstance(v, int)})
    return tally


def insert_organization(conn: Any, keyring: Keyring, filters: Filters) -> None:
    credentials = Credentials(
        org_role_arn="arn:aws:iam::123456789012:role/OrgSyncReadOnly",
        org_session_name="bench",
        org_session_duration=3600,
        member_role_name="OrgSyncMember",
        member_session_name="bench",
        member_session_duration=900,
    )
    store_organization(conn, keyring, ORG_ID, "bench", credentials, filters)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--levels", type=int, default=3, help="OU levels under the root")
    parser.add_argument("--fanout", type=int, default=10, help="OUs per parent")
    args = parser.parse_args()
    server_url = os.environ.get("ORGSYNC_DATABASE_URL")
    client = GeneratedOrganization(args.accounts, args.levels, args.fanout)
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    started = time.perf_counter()
    tracemalloc.start()
    if server_url:
        with scratch_database(server_url) as url:
            tally = run(client, url)
    else:
        tally = run(client, None)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    elapsed = time.perf_counter() - started

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    ous = sum(args.fanout**level for level in range(1, args.levels + 1))
    print(f"organization      {args.accounts} accounts, {ous} OUs, {args.levels} levels")
    print(f"database load     {'yes (scratch database)' if server_url else 'no (walk + judge)'}")
    print(f"API calls         {dict(client.calls)}")
    print(f"outcome           {dict(sorted(tally.items()))}")
    print(f"time              {elapsed:.1f} s")
    print(f"peak RSS          {peak_mb:.1f} MB (after imports: {baseline_mb:.1f} MB)")
    print(f"tracemalloc peak  {traced_peak / 2**20:.1f} MB")
    print(f"target            under 300 MB: {'met' if peak_mb < 300 else 'MISSED'}")
    return 0 if peak_mb < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
