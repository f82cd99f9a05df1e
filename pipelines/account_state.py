"""What `accounts.status` and `accounts.stage` may hold; CHECK constraints in the schema say the
same (status since migration 0001, stage since 0010), and tests/unit/test_queries.py holds the
literals of pipelines/queries.sql to these sets."""

from __future__ import annotations

from enum import StrEnum


class AccountStatus(StrEnum):
    """An account's standing: pending until validated, then the validation's outcome, unless
    AWS suspended it or it left the organization (or its filters)."""

    PENDING = "pending"
    OK = "ok"
    ASSUME_ROLE_FAILED = "assume_role_failed"
    SUSPENDED = "suspended"
    REMOVED = "removed"


class StageMark(StrEnum):
    """The last stage an account passed in its sync (NULL for a standalone account); an account
    marked with one waits for the next, until `reconciled`."""

    DISCOVERED = "discovered"
    VALIDATED = "validated"
    HARVESTED = "harvested"
    RECONCILED = "reconciled"
