"""Bad input from AWS: answers that miss fields discovery or harvesting needs are skipped and
noted, or stop the walk with their reason (the stages driven directly, with fake clients)."""

from __future__ import annotations

from typing import Any

import pytest

from orgsync.pipelines import discovery, harvest


class Organizations:
    """Just the three list calls discovery makes, answering whatever the test wrote."""

    def __init__(
        self,
        roots: list[dict[str, Any]],
        accounts: dict[str, list[dict[str, Any]]],
        ous: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.roots, self.accounts, self.ous = roots, accounts, ous or {}

    def list_roots(self, **_: Any) -> dict[str, Any]:
        return {"Roots": self.roots}

    def list_accounts_for_parent(self, ParentId: str, **_: Any) -> dict[str, Any]:
        return {"Accounts": self.accounts.get(ParentId, [])}

    def list_organizational_units_for_parent(self, ParentId: str, **_: Any) -> dict[str, Any]:
        return {"OrganizationalUnits": self.ous.get(ParentId, [])}


def account(account_id: str, **fields: Any) -> dict[str, Any]:
    return {"Id": account_id, "Name": f"n-{account_id}", "State": "ACTIVE", **fields}


def test_accounts_and_ous_missing_fields_are_skipped_and_noted_and_the_walk_goes_on() -> None:
    api = Organizations(
        roots=[{"Id": "r-1", "Name": "Root"}],
        accounts={
            "r-1": [
                account("111111111111"),
                {"Id": "222222222222", "State": "ACTIVE"},  # no Name
                {"Id": "333333333333", "Name": "no-state"},  # neither State nor Status
                {"Name": "no-id", "State": "ACTIVE"},
                account("444444444444", State=None, Status="ACTIVE"),  # Status alone is enough
            ],
            "ou-ok": [account("555555555555")],
        },
        ous={"r-1": [{"Id": "ou-ok", "Name": "Ok"}, {"Id": "ou-nameless"}]},
    )
    malformed: list[str] = []
    seen = [a.account_id for batch in discovery.walk(api, (), malformed=malformed) for a in batch]

    assert sorted(seen) == ["111111111111", "444444444444", "555555555555"]
    assert malformed == [
        "ListAccountsForParent(r-1) returned an account 222222222222 without Name",
        "ListAccountsForParent(r-1) returned an account 333333333333 without State or Status",
        "ListAccountsForParent(r-1) returned an account without Id",
        "ListOrganizationalUnitsForParent(r-1) returned an OU ou-nameless without Name",
    ]
    assert discovery.malformed_error(malformed).startswith("MalformedAnswer: 4 skipped: ")


def test_without_a_list_a_missing_field_stops_the_walk_with_its_reason() -> None:
    api = Organizations(roots=[{"Id": "r-1"}], accounts={"r-1": [{"Id": "222222222222"}]})
    with pytest.raises(discovery.MalformedAnswer, match="222222222222 without Name"):
        list(discovery.walk(api, ()))


def test_list_roots_answering_nothing_is_an_error_not_an_empty_organization() -> None:
    # a complete walk that saw nothing would remove every account of the organization
    with pytest.raises(discovery.MalformedAnswer, match="ListRoots returned no root"):
        list(discovery.walk(Organizations(roots=[], accounts={}), (), malformed=[]))


class Tags:
    def __init__(self, tags: list[Any]) -> None:
        self.tags = tags

    def get_paginator(self, _: str) -> Tags:
        return self

    def paginate(self, **_: Any) -> list[dict[str, Any]]:
        return [{"Tags": self.tags}]


def test_a_tag_without_key_is_a_malformed_answer_and_a_missing_value_is_empty() -> None:
    assert harvest.fetch_tags(Tags([{"Key": "env"}]), "111111111111") == {"env": ""}
    assert harvest.fetch_tags(Tags([]), "111111111111") == {}
    with pytest.raises(harvest.MalformedTags, match="without Key"):
        harvest.fetch_tags(Tags([{"Value": "prod"}]), "111111111111")


def test_a_list_tags_answer_without_tags_means_no_tags() -> None:
    class NoTags(Tags):
        def paginate(self, **_: Any) -> list[dict[str, Any]]:
            return [{}]

    assert harvest.fetch_tags(NoTags([]), "111111111111") == {}
