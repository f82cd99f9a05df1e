"""Following a sync from the database: per-stage progress (a line rewritten on a terminal,
plain lines elsewhere), then a summary; --attach, --json and --timeout. The pipeline's moves
are made here by hand, the way the stages write them (accounts.stage, syncs.walked_at)."""

from __future__ import annotations

import io
import json
import threading
import uuid
from typing import Any

import psycopg
import pytest

from orgsync.services.commands import cli
from orgsync.services.read_models import sync_progress
from orgsync.services.settings import Settings
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[dict[str, Any]]
ORG = "o-progress1"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("ORGSYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ORGSYNC_BROKER_URL", settings.broker_url)


def new_sync(conn: Conn, accounts: int) -> tuple[str, list[str]]:
    conn.execute(
        "INSERT INTO organizations (org_id, nickname, management_account_id, partition,"
        " credentials_key_id, credentials) VALUES (%s, 'progress', '111111111111', 'aws',"
        " 'k', '\\x00') ON CONFLICT DO NOTHING",
        (ORG,),
    )
    sync_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO syncs (sync_id, org_id, trigger) VALUES (%s, %s, 'manual')", (sync_id, ORG)
    )
    ids = [f"{900000000000 + i}" for i in range(accounts)]
    for account_id in ids:
        conn.execute(
            "INSERT INTO accounts (account_id, org_id, name, sync_id, stage, stage_at)"
            " VALUES (%s, %s, %s, %s, 'discovered', now())",
            (account_id, ORG, f"acct-{account_id}", sync_id),
        )
    conn.commit()
    return sync_id, ids


def advance(conn: Conn, sync_id: str, ids: list[str], stage: str, status: str = "ok") -> None:
    conn.execute(
        "UPDATE accounts SET stage = %s, status = %s, stage_at = now() WHERE account_id = ANY(%s)",
        (stage, status, ids),
    )
    conn.commit()


def finish_walk(conn: Conn, sync_id: str, complete: bool = True) -> None:
    conn.execute(
        "UPDATE syncs SET walked_at = now(), complete = %s WHERE sync_id = %s", (complete, sync_id)
    )
    conn.commit()


def test_plain_lines_follow_each_stage_and_a_summary_closes(settings: Settings, conn: Conn) -> None:
    sync_id, ids = new_sync(conn, 4)
    out = io.StringIO()
    result: list[sync_progress.Snapshot] = []
    follower = threading.Thread(
        target=lambda: result.append(
            sync_progress.follow(settings, sync_id, 30, out, interval=0.05)
        )
    )
    follower.start()

    def shown(text: str) -> bool:
        return text in out.getvalue()

    wait_until(lambda: shown("discovery walking (4 accounts)"), 30, "the first line")
    finish_walk(conn, sync_id)
    wait_until(lambda: shown("discovery walked (4 accounts)"), 30, "the walk's end shown")
    advance(conn, sync_id, ids, "validated")
    wait_until(lambda: shown("validated 4/4"), 30, "validation shown")
    advance(conn, sync_id, ids[:3], "reconciled")
    advance(conn, sync_id, ids[3:], "reconciled", status="assume_role_failed")
    follower.join(timeout=10)

    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0].startswith("discovery walking (4 accounts)  validated 0/4")
    assert any(line.startswith("discovery walked (4 accounts)  validated 4/4") for line in lines)
    assert lines[-1].startswith(
        "discovery walked (4 accounts)  validated 4/4  harvested 4/4  reconciled 4/4"
    )
    assert len(lines) == len(set(line.rsplit("  ", 1)[0] for line in lines))  # one per change
    (snap,) = result
    assert snap.finished and snap.passed["reconciled"] == 4
    summary = sync_progress.summary(conn, sync_id)
    assert summary["accounts"] == {"ok": 3, "assume_role_failed": 1}
    assert summary["changes"] == 0 and summary["duration_seconds"] >= 0


def test_a_terminal_gets_one_line_rewritten_in_place(settings: Settings, conn: Conn) -> None:
    sync_id, ids = new_sync(conn, 2)
    finish_walk(conn, sync_id)
    advance(conn, sync_id, ids, "reconciled")
    out = Terminal()
    sync_progress.follow(settings, sync_id, 10, out)
    assert out.getvalue().startswith("\r\x1b[2Kdiscovery walked (2 accounts)")
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1


def test_attach_follows_a_sync_and_prints_the_summary(
    env: None, conn: Conn, capsys: pytest.CaptureFixture[str]
) -> None:
    sync_id, ids = new_sync(conn, 3)
    finish_walk(conn, sync_id)
    advance(conn, sync_id, ids, "reconciled")
    conn.execute(
        "INSERT INTO badge_history (account_id, key, action, new_value, sync_id)"
        " VALUES (%s, 'team', 'created', 'red', %s)",
        (ids[0], sync_id),
    )
    conn.commit()

    assert cli.main(["sync", "--attach", sync_id]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("discovery walked (3 accounts)  validated 3/3")
    assert out[1].startswith(f"sync {sync_id}: complete in ")
    assert out[2:4] == ["  accounts: 3 ok", "  badge changes: 1; failed validations: 0"]


def test_attach_with_json_prints_the_same_document_as_before(
    env: None, conn: Conn, capsys: pytest.CaptureFixture[str]
) -> None:
    sync_id, ids = new_sync(conn, 2)
    finish_walk(conn, sync_id, complete=False)
    advance(conn, sync_id, ids, "reconciled")

    assert cli.main(["sync", "--attach", sync_id, "--json"]) == 1  # incomplete

    document = json.loads(capsys.readouterr().out)
    assert set(document) == {"sync", "stages"}
    assert document["stages"] == {"reconciled": 2}
    assert document["sync"]["sync_id"] == sync_id and document["sync"]["complete"] is False


def test_a_timeout_says_the_sync_goes_on_and_how_to_follow_it(
    env: None, conn: Conn, capsys: pytest.CaptureFixture[str]
) -> None:
    sync_id, _ = new_sync(conn, 2)  # never walked: still running

    assert cli.main(["sync", "--attach", sync_id, "--timeout", "1", "--json"]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"orgsync: sync {sync_id} is not finished after 1 s; it goes on in the background:"
        f" `orgsync sync --attach {sync_id}` follows it again, `orgsync orgs` shows its state\n"
    )


def test_attaching_to_an_unknown_or_malformed_sync_id_is_one_line(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = str(uuid.uuid4())
    assert cli.main(["sync", "--attach", unknown]) == 2
    assert cli.main(["sync", "--attach", "yesterday"]) == 2
    assert cli.main(["sync"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"orgsync: no sync {unknown} (`orgsync orgs --json` shows each last sync)",
        "orgsync: 'yesterday' is not a sync id (a UUID)",
        "orgsync: give an organization to sync, or --attach SYNC_ID to follow one",
    ]
