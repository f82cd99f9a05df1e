"""The rate budget on real PostgreSQL: processes share it, and AWS clients wait on it."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from psycopg.types.json import Jsonb

from orgsync.services.adapters import db
from orgsync.services.adapters.budget import Budget
from orgsync.services.adapters.budget.arithmetic import SLOW_START_DECREASE, lease_size
from orgsync.services.testing.sample_org import OrgSpec
from orgsync.services.testing.scale_aws import ScaleAws

pytestmark = pytest.mark.integration

RATE = 20.0  # calls/s, floor = ceiling: no adaptation, only the bucket
CALLS_EACH = 30


def call_at_budget_pace(database_url: str, calls: int, times: Any) -> None:
    """One worker process: `calls` calls, each sent when the shared budget says so."""
    pool = db.open_pool(database_url, max_size=2)
    try:
        budget = Budget(pool, {"*": (RATE, RATE)})
        for _ in range(calls):
            _, wait = budget.acquire("o-shared", "ListTagsForResource")
            time.sleep(wait)  # the pace the budget asks for is what the test measures
            times.put(time.time())
    finally:
        pool.close()


def test_two_processes_sharing_one_budget_together_stay_under_its_rate(
    database_url: str,
) -> None:
    spawn = multiprocessing.get_context("spawn")
    times = spawn.Queue()
    workers = [
        spawn.Process(target=call_at_budget_pace, args=(database_url, CALLS_EACH, times))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    sent = sorted(times.get(timeout=60) for _ in range(2 * CALLS_EACH))
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0

    # a second of tokens may go at once; after that, RATE a second between both processes
    burst = int(RATE)
    assert sent[-1] - sent[0] >= (2 * CALLS_EACH - burst) / RATE * 0.95
    for i, start in enumerate(sent):
        in_window = sum(1 for t in sent[i:] if t < start + 1.0)
        assert in_window <= burst + RATE + 1
    with db.connect(database_url) as conn:
        row = conn.execute("SELECT calls, throttled, rate FROM aws_budgets").fetchone()
    assert (row["throttled"], row["rate"]) == (0, RATE)
    # each process may end holding the rest of a lease it took and did not need
    assert 2 * CALLS_EACH <= row["calls"] <= 2 * (CALLS_EACH + lease_size(RATE))


def test_a_throttle_seen_by_one_process_lowers_the_rate_another_process_gets(
    database_url: str,
) -> None:
    rates = {"*": (4.0, 80.0)}  # a new budget starts at 80 / 8 = 10 calls/s
    with (
        db.open_pool(database_url, max_size=2) as first_pool,
        db.open_pool(database_url, max_size=2) as second_pool,
    ):
        first, second = Budget(first_pool, rates), Budget(second_pool, rates)
        ticket, _ = first.acquire("o-a", "ListRoots")
        first.throttled("o-a", "ListRoots", ticket)
        _, wait = second.acquire("o-a", "ListRoots")
        with db.connect(database_url) as conn:
            row = conn.execute("SELECT rate, throttled FROM aws_budgets").fetchone()
    assert row == {"rate": pytest.approx(10.0 * SLOW_START_DECREASE), "throttled": 1}
    assert wait > 0  # the banked tokens went with the throttle: the next call waits its turn


def test_an_organizations_override_bounds_its_budget_from_the_next_call(
    database_url: str,
) -> None:
    override = {"*": {"floor": 1, "ceiling": 4}}
    with db.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO organizations (org_id, nickname, management_account_id, partition,"
            " credentials_key_id, credentials, aws_rates)"
            " VALUES ('o-override01', 'slow', '111111111111', 'aws', 'k', '\\x00', %s)",
            (Jsonb(override),),
        )
    rates = {"*": (10.0, 400.0)}  # without the override: a slow start at 50 calls/s
    with db.open_pool(database_url, max_size=2) as pool:
        budget = Budget(pool, rates)
        budget.acquire("o-override01", "ListParents")
        budget.acquire("service", "AssumeRole")
        with db.connect(database_url) as conn:
            first = conn.execute("SELECT rate FROM aws_budgets WHERE scope = 'o-override01'")
            assert first.fetchone() == {"rate": 1.0}  # an eighth of 4, held up by the floor
            conn.execute(
                "UPDATE organizations SET aws_rates = %s",
                (Jsonb({"ListParents": {"floor": 2, "ceiling": 2}}),),
            )
        budget.acquire("o-override01", "ListParents")
        with db.connect(database_url) as conn:
            rows = conn.execute("SELECT scope, rate FROM aws_budgets ORDER BY scope").fetchall()
    # the changed override holds from the next call; orgsync's own scope knows no override
    assert rows == [
        {"scope": "o-override01", "rate": 2.0},
        {"scope": "service", "rate": 50.0},
    ]


class CountingPool:
    """The pool, counting the connections the budget takes: its round trips to PostgreSQL."""

    def __init__(self, pool: Any) -> None:
        self.pool, self.taken = pool, 0

    def connection(self) -> Any:
        self.taken += 1
        return self.pool.connection()


def test_a_process_takes_a_lease_of_tokens_per_round_trip_each_keeping_its_slot(
    database_url: str,
) -> None:
    rate = 100.0  # a lease of 10 tokens
    with db.open_pool(database_url, max_size=2) as pool:
        counting = CountingPool(pool)
        # the process's clock stands still: no slot passes, no token goes back
        budget = Budget(counting, {"*": (rate, rate)}, clock=lambda: 0.0)  # type: ignore[arg-type]
        started = time.monotonic()
        granted = [budget.acquire("o-lease", "ListParents") for _ in range(250)]
        elapsed = time.monotonic() - started
    tickets, waits = zip(*granted, strict=True)
    assert list(tickets) == list(range(1, 251))
    assert counting.taken <= 1 + 250 / lease_size(rate)  # the first lease is one token
    # a second of burst, then the rate: the 250th token's slot is 1.5 s away, less what
    # PostgreSQL's clock refilled while the round trips ran (a loaded machine is slower)
    expected = (250 - rate) / rate
    assert expected - elapsed - 0.05 <= waits[-1] <= expected + 0.05


def test_a_lease_gives_back_tokens_whose_slots_passed_and_drops_them_on_a_throttle(
    database_url: str,
) -> None:
    def row() -> dict[str, Any]:
        with db.connect(database_url) as conn:
            found = conn.execute("SELECT tokens, refilled_at FROM aws_budgets").fetchone()
        assert found is not None
        return found

    now = [0.0]
    with db.open_pool(database_url, max_size=2) as pool:
        counting = CountingPool(pool)
        budget = Budget(counting, {"*": (100.0, 100.0)}, clock=lambda: now[0])  # type: ignore[arg-type]
        for _ in range(3):  # a round trip for one token, one for a lease of 10, then the lease
            budget.acquire("o-lease", "ListParents")
        assert counting.taken == 2
        before = row()
        now[0] = 5.0  # the lease's 8 slots passed unused
        budget.acquire("o-lease", "ListParents")
        assert counting.taken == 3
        after = row()
        refilled = 100.0 * (after["refilled_at"] - before["refilled_at"])
        assert after["tokens"] == pytest.approx(min(100.0, before["tokens"] + refilled + 8) - 10)

        ticket, _ = budget.acquire("o-lease", "ListParents")
        budget.throttled("o-lease", "ListParents", ticket)
        budget.acquire("o-lease", "ListParents")
        assert counting.taken == 5  # the throttle's round trip, then a new lease


@pytest.fixture(scope="module")
def scale() -> Iterator[ScaleAws]:
    with ScaleAws(OrgSpec(accounts=30, depth=1, branching=2, suspended=0, excluded=0)) as aws:
        yield aws


def test_a_client_on_the_budget_rides_out_aws_throttling_without_an_error(
    database_url: str, scale: ScaleAws
) -> None:
    """botocore's own retries are off: every throttled answer is the budget's to wait out."""
    scale.faults.update(rates={"ListTagsForResource": [20, 5]})
    orgs = boto3.client(
        "organizations",
        endpoint_url=scale.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )
    accounts = [a.id for a in scale.org.sample_org().accounts] * 3
    with db.open_pool(database_url, max_size=8) as pool:
        Budget(pool, {"*": (5.0, 60.0)}).attach(orgs, "o-scale")
        with ThreadPoolExecutor(8) as threads:
            answers = list(
                threads.map(lambda a: orgs.list_tags_for_resource(ResourceId=a), accounts)
            )
    with db.connect(database_url) as conn:
        row = conn.execute("SELECT * FROM aws_budgets").fetchone()
    throttled = scale.faults.counts()["throttled"].get("ListTagsForResource", 0)

    assert len(answers) == len(accounts)
    assert row is not None and (row["scope"], row["api"]) == ("o-scale", "ListTagsForResource")
    assert row["throttled"] == throttled > 0  # the ceiling is above AWS's rate: it found out
    # each throttled call waited and went again; a throttle drops the process's unused lease
    used = len(accounts) + throttled
    assert used <= row["calls"] <= used + (throttled + 1) * lease_size(60.0)
    assert row["rate"] < 60.0


def test_without_postgresql_a_call_goes_ahead_unpaced_rather_than_failing(
    database_url: str, scale: ScaleAws
) -> None:
    scale.faults.update(rates={})
    orgs = boto3.client(
        "organizations",
        endpoint_url=scale.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    pool = db.open_pool(database_url, max_size=1)
    Budget(pool, {"*": (1.0, 10.0)}).attach(orgs, "o-scale")
    pool.close()  # what a PostgreSQL restart looks like to the pool, for a moment

    assert orgs.list_roots()["Roots"]
