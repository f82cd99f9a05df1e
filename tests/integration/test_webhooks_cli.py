"""`orgsync webhooks` as an administrator types it: add, list, deliveries, redeliver, remove."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orgsync.services.testing.webhook_receiver import Receiver

pytestmark = pytest.mark.integration


def test_a_webhook_is_added_listed_tried_redelivered_and_removed(
    run: Any, conn: Any, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(Receiver().secret)
    code, out, _ = run(
        "webhooks", "add", "http://127.0.0.1:9/hook", "--secret-file", str(secret),
        "--types", "orgsync.account.added,orgsync.account.removed",
    )  # fmt: skip
    webhook_id = out.strip()
    assert code == 0 and webhook_id.startswith("wh_")

    code, out, _ = run("webhooks", "list", "--json")
    [listed] = json.loads(out)
    assert listed["types"] == ["orgsync.account.added", "orgsync.account.removed"]
    assert listed["url"] == "http://127.0.0.1:9/hook" and secret.read_text() not in out

    conn.execute("INSERT INTO accounts (account_id, name) VALUES ('111111111111', 'a')")
    conn.execute("INSERT INTO webhook_deliveries (webhook_id, event_seq, state)"
                 " SELECT %s, seq, 'failed' FROM outbound_events", (webhook_id,))  # fmt: skip
    conn.commit()
    code, out, _ = run("webhooks", "deliveries", webhook_id, "--json", "--state", "failed")
    [failed] = json.loads(out)
    assert failed["type"] == "orgsync.account.added" and failed["subject"] == "111111111111"

    code, out, _ = run("webhooks", "redeliver", str(failed["delivery_id"]))
    assert code == 0 and webhook_id in out
    code, out, _ = run("webhooks", "deliveries", webhook_id, "--json")
    assert [d["state"] for d in json.loads(out)] == ["pending"]

    assert run("webhooks", "remove", webhook_id)[0] == 0
    assert json.loads(run("webhooks", "list", "--json")[1]) == []
    code, _, err = run("webhooks", "redeliver", str(failed["delivery_id"]))
    assert code == 2 and "no delivery" in err


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["http://169.254.169.254/"], "link-local or cloud metadata"),
        (["http://127.0.0.1/", "--types", "orgsync.account.gone"], "unknown event type"),
        (["http://127.0.0.1/", "--org", "nobody"], "no organization 'nobody'"),
    ],
)
def test_a_webhook_that_cannot_receive_is_refused_in_one_line(
    run: Any, tmp_path: Path, args: list[str], reason: str
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(Receiver().secret)
    code, out, err = run("webhooks", "add", *args, "--secret-file", str(secret))
    assert code == 2 and out == "" and reason in err and len(err.splitlines()) == 1


def test_a_secret_file_that_is_not_a_standard_webhooks_secret_is_refused(
    run: Any, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("hunter2")
    code, _, err = run("webhooks", "add", "http://127.0.0.1/", "--secret-file", str(secret))
    assert code == 2 and "whsec_" in err and "hunter2" not in err
    code, _, err = run("webhooks", "add", "http://127.0.0.1/", "--secret-file", "/nonexistent")
    assert code == 2 and "/nonexistent" in err
