"""Issue 18, finding 6: key rotation under running workers, and the key file as a trust boundary.

Before: a worker kept the keyring it read at start, so after `orgsync keys rotate` every
organization load raised UnknownKeyError; `keys.tmp` was opened without O_EXCL/O_NOFOLLOW (a
leftover 0644 file gave a 0644 key file, a symlink was written through); the mode was not
checked on load; two `generate` at once could each write a key; a folder in the key file's
place gave a traceback; and a rotation overwrote an update committed between its read and its
reseal with the old credentials.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from orgsync.pipelines.credentials import InvalidKeyringError, Keyring, UnknownKeyError
from orgsync.pipelines.orgs import load_organization, seal_credentials
from orgsync.services.adapters import keys
from tests.support.keys import ORGS, creds, file_settings, seed

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[dict[str, Any]]


def test_a_worker_keyring_opens_credentials_resealed_by_a_rotation_it_did_not_see(
    database_url: str, key_file: Path, autocommit: Conn
) -> None:
    settings = file_settings(database_url, key_file)
    keys.generate(settings)
    seed(autocommit, keys.load_keyring(settings))
    frozen = keys.load_keyring(settings)  # what every worker held before
    worker = keys.ReloadingKeyring(settings)
    assert load_organization(autocommit, worker, ORGS[0]) is not None

    new_id, _ = keys.rotate(settings, autocommit)

    with pytest.raises(UnknownKeyError):
        load_organization(autocommit, frozen, ORGS[0])
    org = load_organization(autocommit, worker, ORGS[0])  # reloaded once, on the unknown id
    assert org is not None and org.credentials == creds("Role0")
    assert worker.active.key_id == new_id  # and it now seals under the new key


def test_a_worker_keyring_follows_a_changed_key_file_without_being_asked(
    database_url: str, key_file: Path, autocommit: Conn
) -> None:
    settings = file_settings(database_url, key_file)
    keys.generate(settings)
    now = [0.0]
    worker = keys.ReloadingKeyring(settings, clock=lambda: now[0])
    new_id, _ = keys.rotate(settings, autocommit)
    now[0] += 1.5  # the file is looked at no more than once a second
    assert worker.active.key_id == new_id


def test_the_key_file_is_0600_under_a_0700_folder_and_never_written_through_a_planted_file(
    database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "new" / "orgsync"
    path = folder / "keys"
    folder.mkdir(parents=True, mode=0o700)
    target = tmp_path / "attacker-owned"
    target.write_text("")
    (folder / "keys.tmp").symlink_to(target)  # the old fixed temporary name, planted
    leftover = folder / ".keys.tmp"
    leftover.write_text("")
    leftover.chmod(0o644)

    keys.generate(file_settings(database_url, path))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not path.is_symlink() and target.read_text() == ""
    fresh = tmp_path / "made" / "here" / "keys"
    keys.generate(file_settings(database_url, fresh))
    assert stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_a_key_file_others_can_read_or_write_is_refused_with_the_fix(
    database_url: str, key_file: Path, mode: int
) -> None:
    settings = file_settings(database_url, key_file)
    keys.generate(settings)
    key_file.chmod(mode)
    with pytest.raises(InvalidKeyringError, match=f"mode {mode:04o}.*chmod 600"):
        keys.load_keyring(settings)


def test_a_symlink_or_a_folder_in_place_of_the_key_file_is_a_one_line_error(
    database_url: str, tmp_path: Path
) -> None:
    real = tmp_path / "real"
    keys.generate(file_settings(database_url, real))
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(InvalidKeyringError, match="not a symlink"):
        keys.load_keyring(file_settings(database_url, link))
    folder = tmp_path / "folder"
    folder.mkdir(mode=0o700)
    with pytest.raises(InvalidKeyringError, match="not a regular file"):
        keys.load_keyring(file_settings(database_url, folder))


def test_generate_run_eight_times_at_once_writes_exactly_one_key(
    database_url: str, key_file: Path
) -> None:
    settings = file_settings(database_url, key_file)
    results: list[str | None] = []
    start = threading.Barrier(8)

    def run() -> None:
        start.wait()
        results.append(keys.generate(settings, if_missing=True)[1])

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    written = [r for r in results if r is not None]
    assert len(results) == 8 and len(written) == 1
    assert keys.load_keyring(settings).key_ids == (written[0],)
    assert [p.name for p in key_file.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_rotation_keeps_an_update_committed_between_its_read_and_its_reseal(
    database_url: str, key_file: Path, autocommit: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = file_settings(database_url, key_file)
    keys.generate(settings)
    old = keys.load_keyring(settings)
    seed(autocommit, old)
    real_reseal = keys.reseal
    updated: list[str] = []

    def update_meanwhile(keyring: Keyring, sealed: Any, *, bound_to: str) -> Any:
        if not updated and bound_to == f"organization:{ORGS[0]}":
            # a worker that has not read the new key yet stores an update under the old one
            new = seal_credentials(old, ORGS[0], creds("Updated"))
            with psycopg.connect(database_url, autocommit=True) as other:
                other.execute(
                    "UPDATE organizations SET credentials_key_id = %s, credentials = %s"
                    " WHERE org_id = %s",
                    (new.key_id, new.blob, ORGS[0]),
                )
            updated.append(bound_to)
        return real_reseal(keyring, sealed, bound_to=bound_to)

    monkeypatch.setattr(keys, "reseal", update_meanwhile)
    new_id, count = keys.rotate(settings, autocommit)

    assert updated and count == 3
    org = load_organization(autocommit, Keyring([keys.load_keyring(settings).active]), ORGS[0])
    assert org is not None and org.credentials == creds("Updated")  # kept, and resealed
    row = autocommit.execute(
        "SELECT credentials_key_id AS k FROM organizations WHERE org_id = %s", (ORGS[0],)
    ).fetchone()
    assert row is not None and row["k"] == new_id
    assert os.path.exists(key_file)
