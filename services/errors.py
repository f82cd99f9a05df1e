"""Errors a process reports to its operator in one line, never as a traceback."""

from __future__ import annotations


class ServiceUnavailable(RuntimeError):
    """A service orgsync needs (PostgreSQL, RabbitMQ, AWS) cannot be used; `fix` says how."""

    def __init__(self, detail: str, fix: str = "") -> None:
        super().__init__(f"{detail}; {fix}" if fix else detail)
        self.detail = detail
        self.fix = fix


class UserError(RuntimeError):
    """A command was asked for something that cannot be done; the message says why."""
