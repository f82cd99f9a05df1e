"""Several organizations in one scale simulator: whose a call is, and whose bucket it takes."""

from __future__ import annotations

import argparse

import pytest

from orgsync.services.testing.sample_org import MANAGEMENT_ACCOUNT_ID, OrgSpec
from orgsync.services.testing.scale_aws import Organizations, generate, org_spec
from orgsync.services.testing.scale_orgs import Directory, RateBuckets, parse_rates

A = generate(OrgSpec(accounts=30, depth=2, branching=2, tags_per_account=2))
B = generate(OrgSpec(accounts=5, depth=1, branching=3, tags_per_account=3, seed=7), number=1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_organization_keeps_the_single_organization_ids() -> None:
    alone = generate(OrgSpec(accounts=30, depth=2, branching=2, tags_per_account=2))

    assert A.management_account_id == MANAGEMENT_ACCOUNT_ID
    assert A.account_id(0) == "100000000000"
    assert (A.org_id, A.root_id, A.parent_ids) == (alone.org_id, alone.root_id, alone.parent_ids)


def test_another_organization_has_its_own_management_account_ids_tree_and_tags() -> None:
    assert B.management_account_id == "200000000001"
    assert B.org_role_arn == "arn:aws:iam::200000000001:role/OrgSyncReadOnly"
    assert B.account_id(0) == "101000000000"
    assert B.org_id != A.org_id and B.root_id != A.root_id
    assert len(B.parent_ids) == 1 + 3 and len(A.parent_ids) == 1 + 2 + 4
    assert len(B.tags(B.account_id(0))) == 3
    assert B.index_of(A.account_id(0)) is None and A.index_of(B.account_id(0)) is None


def test_each_organization_describes_itself_with_its_own_management_account() -> None:
    described = Organizations(B).call("DescribeOrganization", {})["Organization"]

    assert described["Id"] == B.org_id
    assert described["MasterAccountId"] == "200000000001"
    assert described["Arn"] == f"arn:aws:organizations::200000000001:organization/{B.org_id}"
    listed = Organizations(B).call("ListAccounts", {})["Accounts"]
    assert {a["Id"] for a in listed} == {"200000000001", *(B.account_id(i) for i in range(5))}


def test_a_call_belongs_to_its_callers_organization_else_its_targets_else_the_first() -> None:
    directory = Directory([A, B])

    assert directory.route("200000000001") == 1  # B's management account (its org role)
    assert directory.route(B.account_id(3)) == 1  # a member of B
    assert directory.route(MANAGEMENT_ACCOUNT_ID) == 0
    assert directory.route(None, "200000000001") == 1  # base credentials assuming B's role
    assert directory.route("999999999999") == 0  # nobody's: the single-organization case


def test_two_organizations_may_not_share_a_management_account() -> None:
    with pytest.raises(ValueError, match="share a management account"):
        Directory([A, generate(OrgSpec(accounts=3, suspended=0, excluded=0))])


def test_a_throttled_organization_leaves_the_other_organizations_calls_alone() -> None:
    clock = Clock()
    directory = Directory([A, B], clock)
    directory.configure(0, {"rates": {"*": [20, 20]}})

    a_answers = [
        directory.decide(0, "ListParents", A.management_account_id, True) for _ in range(25)
    ]
    b_answers = [
        directory.decide(1, "ListParents", B.management_account_id, True) for _ in range(25)
    ]

    assert sum(d.throttled for d in a_answers) == 5  # the burst of 20, then empty
    assert not any(d.throttled for d in b_answers)
    assert directory.state(0)["counts"] == {
        "operations": {"ListParents": 25},
        "throttled": {"ListParents": 5},
    }
    assert directory.state(1)["counts"]["throttled"] == {}


def test_an_organizations_star_rate_leaves_sts_alone_unless_it_is_named() -> None:
    directory = Directory([A, B], Clock())
    directory.configure(0, {"rates": {"*": [1, 1]}})
    caller = A.management_account_id

    assume = [directory.decide(0, "AssumeRole", caller, False).throttled for _ in range(3)]
    directory.configure(0, {"rates": {"*": [1, 1], "AssumeRole": [1, 1]}})
    named = [directory.decide(0, "AssumeRole", caller, False).throttled for _ in range(2)]

    assert assume == [False, False, False]
    assert named == [False, True]


def test_buckets_are_per_api_and_calling_account_and_refill_at_their_rate() -> None:
    clock = Clock()
    buckets = RateBuckets({"*": (20.0, 2.0)}, clock)

    assert [buckets.take("ListParents", "a", True) for _ in range(3)] == [True, True, False]
    assert buckets.take("ListTagsForResource", "a", True)  # another API
    assert buckets.take("ListParents", "b", True)  # another calling account
    clock.now += 0.06  # a little more than one call's worth at 20 calls/s
    assert buckets.take("ListParents", "a", True)
    assert not buckets.take("ListParents", "a", True)


def test_rates_and_latency_change_at_run_time_and_reset_clears_them() -> None:
    directory = Directory([A, B], Clock())

    state = directory.configure(1, {"rates": {"ListRoots": 5}, "extra_latency_ms": 450})
    slowed = directory.decide(1, "ListRoots", B.management_account_id, True)
    directory.configure(1, {"rates": {}})
    directory.reset()

    assert state == {"rates": {"ListRoots": [5.0, 5.0]}, "extra_latency_ms": 450.0}
    assert slowed.extra_latency_s == pytest.approx(0.45)
    assert directory.state(1) == {
        "rates": {},
        "extra_latency_ms": 0.0,
        "counts": {"operations": {}, "throttled": {}},
    }


@pytest.mark.parametrize(
    "settings",
    [
        {"rates": {"*": [0, 1]}},
        {"rates": {"List Roots": 1}},
        {"rates": ["*"]},
        {"extra_latency_ms": -1},
        {"extra_latency_ms": True},
        {"latency_ms": 5},
    ],
)
def test_bad_organization_settings_are_refused_and_change_nothing(
    settings: dict[str, object],
) -> None:
    directory = Directory([A, B], Clock())
    directory.configure(0, {"rates": {"*": [20, 20]}})

    with pytest.raises(ValueError):
        directory.configure(0, settings)
    assert directory.state(0)["rates"] == {"*": [20.0, 20.0]}


def test_an_unknown_management_account_is_refused() -> None:
    with pytest.raises(ValueError, match="no organization has management account 1"):
        Directory([A]).by_management("1")


def test_rates_read_as_the_global_control_plane_reads_them() -> None:
    assert parse_rates({"*": 20, "ListParents": [5, 10]}) == {
        "*": (20.0, 20.0),
        "ListParents": (5.0, 10.0),
    }


def test_the_command_line_describes_another_organization_by_orgspec_fields() -> None:
    assert org_spec("accounts=50,depth=2,branching=3,seed=7,suspended=0,excluded=0") == OrgSpec(
        accounts=50, depth=2, branching=3, seed=7, suspended=0, excluded=0
    )
    assert org_spec("accounts=5, tags-per-account=3") == OrgSpec(accounts=5, tags_per_account=3)
    for bad in ("accounts=x", "size=5", "accounts=1,suspended=2"):
        with pytest.raises(argparse.ArgumentTypeError):
            org_spec(bad)
