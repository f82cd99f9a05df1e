"""`limit_ou_ids` are checked against AWS at registration: every id must be a root or an OU of
this organization. An id that exists nowhere would leave every account out of scope, and the
next complete walk would remove them all as `out_of_scope`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from orgsync.pipelines.aws_errors import classify
from orgsync.pipelines.request_rules import Credentials, Problem

Assume = Callable[[Credentials, bool], Any]


def scope_problem(assume: Assume, creds: Credentials, ids: tuple[str, ...]) -> Problem | None:
    """Why `ids` cannot limit this organization's scope; None when every one is in it."""
    wanted = set(ids)
    try:
        orgs = assume(creds, True).organizations
        found = set(_known_ids(orgs, wanted))
    except Exception as error:
        e = classify(error)
        return Problem("limit_ou_ids", f"could not check the OU ids in AWS: {e.code}: {e.message}")
    if missing := sorted(wanted - found):
        return Problem(
            "limit_ou_ids",
            f"not a root or OU of this organization: {', '.join(missing)}"
            " (an id that exists nowhere would put every account out of scope)",
        )
    return None


def _known_ids(orgs: Any, wanted: set[str]) -> Iterator[str]:
    """The organization's root and OU ids, breadth first, until every wanted one was seen."""
    seen: set[str] = set()
    parents = [root["Id"] for root in _pages(orgs.list_roots, "Roots")]
    while parents and not wanted <= seen:
        parent = parents.pop(0)
        seen.add(parent)
        yield parent
        for ou in _pages(
            orgs.list_organizational_units_for_parent, "OrganizationalUnits", ParentId=parent
        ):
            parents.append(ou["Id"])


def _pages(call: Callable[..., Any], key: str, **params: Any) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        page = call(**params, **({"NextToken": token} if token else {}))
        yield from page[key]
        token = page.get("NextToken")
        if not token:
            return
