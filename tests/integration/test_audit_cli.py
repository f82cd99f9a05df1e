"""The audit trail through the CLI's door: each command that changes something writes one row
as `cli:<os user>`, and `orgsync audit` shows them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orgsync.services.commands.context import os_user
from orgsync.services.testing.webhook_receiver import Receiver
from tests.support.web import add_account, add_failure, add_org, add_sync

pytestmark = pytest.mark.integration
ORG = "o-aaaaaaaaaa"


def trail(run: Any, *args: str) -> list[dict[str, Any]]:
    code, out, err = run("audit", "--json", *args)
    assert code == 0, err
    return list(reversed(json.loads(out)))  # oldest first, in the order the test acted


def test_every_cli_change_writes_one_row_as_the_os_user_and_audit_lists_them(
    run: Any, conn: Any, tmp_path: Path
) -> None:
    add_org(conn, ORG, "alpha")
    sync_id = add_sync(conn, ORG)
    add_account(conn, "100000000001", "failing", ORG, status="assume_role_failed", sync_id=sync_id)
    add_failure(conn, "100000000001", ORG, "denied")
    add_account(conn, "200000000002", "solo", None, badges={"team": "red"})
    conn.commit()
    secret = tmp_path / "secret"
    secret.write_text(Receiver().secret)

    assert run("sync", "alpha", "--incremental")[0] == 0
    assert run("retry-failed", "--org", "alpha")[0] == 0
    assert run("badges", "add", "200000000002", "team=blue")[0] == 0
    webhook_id = run("webhooks", "add", "https://hooks.example.com/in?t=1#f", "--secret-file",
                     str(secret), "--org", "alpha")[1].strip()  # fmt: skip
    assert run("webhooks", "remove", webhook_id)[0] == 0

    rows = trail(run)
    assert [r["action"] for r in rows] == [
        "sync.start", "failed.retry", "badges.edit", "webhook.add", "webhook.remove"
    ]  # fmt: skip
    assert {(r["actor"], r["via"]) for r in rows} == {(f"cli:{os_user()}", "cli")}
    sync, retry, badge, added, removed = rows
    assert sync["org_id"] == ORG and sync["changes"]["mode"] == "incremental"
    assert retry["changes"]["queued"] == 1
    assert badge["subject"] == "200000000002"
    assert badge["changes"] == {"team": {"old": "red", "new": "blue"}}
    assert added["changes"] == {
        "url": "https://hooks.example.com/in",
        "types": None,
        "secret": "[secret changed]",
    }
    assert removed["subject"] == webhook_id and removed["changes"]["url"] == added["changes"]["url"]
    assert secret.read_text().strip() not in json.dumps(rows)
    assert [r["action"] for r in trail(run, "--org", "alpha")] == [
        "sync.start", "failed.retry", "webhook.add", "webhook.remove"
    ]  # fmt: skip
    code, out, _ = run("audit", "--limit", "1")
    assert code == 0 and "webhook.remove" in out and "sync.start" not in out


def test_keys_rotate_and_standalone_accounts_write_their_rows(run: Any, tmp_path: Path) -> None:
    assert run("account", "add", "300000000003", "--role-arn",
               "arn:aws:iam::300000000003:role/Reader", "--name", "lab")[0] == 0  # fmt: skip
    code, _, err = run("keys", "rotate")
    assert code == 0, err
    assert run("account", "delete", "300000000003")[0] == 0

    rows = trail(run)
    assert [(r["action"], r["subject"]) for r in rows] == [
        ("account.add", "300000000003"),
        ("keys.rotate", None),
        ("account.delete", "300000000003"),
    ]
    assert rows[0]["changes"] == {"name": "lab", "credentials": "[secret changed]"}
    assert rows[1]["changes"] == {"active_key_id": "test1", "resealed": 0}  # already under it
    assert "Reader" not in json.dumps(rows)


def test_a_refused_change_leaves_no_row(run: Any, conn: Any) -> None:
    add_account(conn, "200000000002", "solo", None)
    conn.commit()

    code, _, err = run("badges", "add", "200000000002", "system.cloud_organization=forged")

    assert code == 2 and "nothing changed" in err
    assert trail(run) == []


def test_grants_and_tokens_write_their_rows_never_the_token(run: Any, conn: Any) -> None:
    add_org(conn, ORG, "alpha")
    conn.commit()

    assert run("grants", "add", "payments-oncall", "--role", "operator", "--org", "alpha")[0] == 0
    code, token, _ = run("tokens", "create", "grafana", "--role", "viewer")
    assert code == 0
    assert run("tokens", "revoke", "grafana")[0] == 0
    assert run("grants", "remove", "payments-oncall", "--org", "alpha")[0] == 0

    rows = trail(run)
    assert [(r["action"], r["org_id"], r["subject"]) for r in rows] == [
        ("grant.add", ORG, "payments-oncall"),
        ("token.create", None, "grafana"),
        ("token.revoke", None, "grafana"),
        ("grant.remove", ORG, "payments-oncall"),
    ]
    assert rows[0]["changes"] == {"group": "payments-oncall", "role": "operator"}
    assert rows[1]["changes"]["role"] == "viewer" and token.strip() not in json.dumps(rows)
