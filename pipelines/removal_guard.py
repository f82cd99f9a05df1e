"""The removal guard: a complete walk that would remove more than a set share of an
organization's accounts (default 20 %) removes nothing and holds its sync with the reason.
A walk removing only a few accounts (`ORGSYNC_REMOVAL_MIN`, default 10) is never held: at that
size an operator sees each removal, and a small organization keeps the usual rules (two of its
five accounts leaving are simply removed).

A typo'd OU id or exclusion prefix, a role that suddenly sees one OU, an AWS answer that is
complete but wrong: each looks, to a walk, like most accounts leaving. Removals are cheap to do
and costly to undo (badges, history), so past the limit an operator decides: `orgsync sync ORG
--confirm-removals` starts a sync whose walk removes what it finds gone. The walk counts what it
would remove with `removal_guard_counts` (pipelines/queries.sql), in its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LIMIT = 0.20
DEFAULT_MIN = 10


@dataclass(frozen=True)
class Decision:
    remove: bool
    held: str | None = None  # why nothing was removed


def decide(
    accounts: int, removing: int, *, limit: float, confirmed: bool, at_least: int = DEFAULT_MIN
) -> Decision:
    """Whether a walk may remove `removing` of the organization's `accounts` (those not yet
    removed before it): always up to `at_least` accounts, beyond that up to `limit` of them."""
    if confirmed or removing <= max(at_least, limit * accounts):
        return Decision(remove=True)
    return Decision(
        remove=False,
        held=(
            f"this walk would remove {removing} of {accounts} accounts"
            f" ({removing / accounts:.0%}), more than the {limit:.0%} limit"
            " (ORGSYNC_REMOVAL_LIMIT): nothing was removed. Check the organization's"
            " limit_ou_ids and exclude_prefixes, then run `orgsync sync ORG --confirm-removals`"
        ),
    )
