"""Credential keys: `orgsync keys generate`, `orgsync keys rotate`, and what a wrong key does."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from orgsync.pipelines.credentials import CredentialError, Keyring, generate_key
from orgsync.pipelines.orgs import load_organization
from orgsync.services.adapters import keys
from orgsync.services.errors import UserError
from orgsync.services.settings import Settings
from tests.support.keys import ORGS, creds, file_settings, seed

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[dict[str, Any]]


def key_ids(conn: Conn) -> list[str]:
    rows = conn.execute(
        "SELECT credentials_key_id AS k FROM organizations UNION ALL"
        " SELECT credentials_key_id FROM accounts WHERE credentials IS NOT NULL"
    ).fetchall()
    return sorted(row["k"] for row in rows)


def test_keys_generate_writes_one_key_to_a_file_only_its_owner_can_read(
    database_url: str, key_file: Path
) -> None:
    path, key_id = keys.generate(file_settings(database_url, key_file))

    assert path == key_file and key_id is not None
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert Keyring.parse(key_file.read_text()).key_ids == (key_id,)


def test_keys_generate_never_overwrites_a_key_file(database_url: str, key_file: Path) -> None:
    settings = file_settings(database_url, key_file)
    keys.generate(settings)
    before = key_file.read_text()

    with pytest.raises(UserError, match="keys rotate"):
        keys.generate(settings)
    assert keys.generate(settings, if_missing=True) == (key_file, None)
    assert key_file.read_text() == before


def test_keys_rotate_adds_a_newest_key_and_reseals_every_organization_and_account_credential(
    database_url: str, key_file: Path, autocommit: Conn
) -> None:
    settings = file_settings(database_url, key_file)
    _, old_id = keys.generate(settings)
    seed(autocommit, keys.load_keyring(settings))

    new_id, count = keys.rotate(settings, autocommit)

    keyring = keys.load_keyring(settings)
    assert keyring.key_ids == (new_id, old_id) and count == 3
    assert key_ids(autocommit) == [new_id] * 3
    newest_only = Keyring([keyring.active])
    for number, org_id in enumerate(ORGS):
        org = load_organization(autocommit, newest_only, org_id)
        assert org is not None and org.credentials == creds(f"Role{number}")


def test_an_interrupted_rotation_is_finished_by_running_it_again(
    database_url: str, key_file: Path, autocommit: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = file_settings(database_url, key_file)
    keys.generate(settings)
    seed(autocommit, keys.load_keyring(settings))
    real_reseal, calls = keys.reseal, []

    def dies_after_one(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt  # the operator's ^C, or a crash, mid-rotation
        return real_reseal(*args, **kwargs)

    monkeypatch.setattr(keys, "reseal", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        keys.rotate(settings, autocommit)
    monkeypatch.setattr(keys, "reseal", real_reseal)
    half_done = key_ids(autocommit)
    assert len(set(half_done)) == 2  # one row under the new key, the others not yet

    newest, _ = keys.rotate(settings, autocommit)

    assert key_ids(autocommit) == [newest] * 3
    assert keys.reseal_all(keys.load_keyring(settings), autocommit) == 0  # nothing left to do
    for org_id in ORGS:
        assert load_organization(autocommit, keys.load_keyring(settings), org_id) is not None


def test_rotating_with_keys_from_the_environment_reseals_under_the_first_one(
    database_url: str, autocommit: Conn
) -> None:
    old = Keyring([generate_key("old")])
    seed(autocommit, old)
    both = old.with_new_key(generate_key("new"))

    key_id, count = keys.rotate(
        Settings(database_url=database_url, encryption_keys=both.format()), autocommit
    )

    assert (key_id, count) == ("new", 3) and key_ids(autocommit) == ["new"] * 3


def test_a_ciphertext_swapped_between_two_organizations_fails_to_decrypt(
    conn: Conn, keyring: Keyring
) -> None:
    seed(conn, keyring)
    conn.execute(
        "UPDATE organizations o SET credentials = other.credentials FROM organizations other"
        " WHERE o.org_id <> other.org_id"
    )

    for org_id in ORGS:
        with pytest.raises(CredentialError, match=f"does not belong to 'organization:{org_id}'"):
            load_organization(conn, keyring, org_id)


def test_rotation_refuses_a_swapped_ciphertext_before_touching_the_key_file(
    database_url: str, key_file: Path, autocommit: Conn
) -> None:
    settings = file_settings(database_url, key_file)
    keys.generate(settings)
    seed(autocommit, keys.load_keyring(settings))
    autocommit.execute(
        "UPDATE organizations o SET credentials = other.credentials FROM organizations other"
        " WHERE o.org_id <> other.org_id"
    )
    before = key_file.read_text()

    with pytest.raises(CredentialError):
        keys.rotate(settings, autocommit)
    assert key_file.read_text() == before


def orgsync(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ORGSYNC_")}
    return subprocess.run(
        [sys.executable, "-m", "orgsync", *args],
        env={**environ, "ORGSYNC_DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("orgsync: ")
    for word in words:
        assert word in line


def test_the_cli_reports_a_missing_key_in_one_line(database_url: str, tmp_path: Path) -> None:
    done = orgsync(
        database_url, "keys", "rotate", ORGSYNC_ENCRYPTION_KEY_FILE=str(tmp_path / "none")
    )

    assert_one_line_error(done, "no encryption keys", "orgsync keys generate")


def test_the_cli_reports_a_wrong_key_in_one_line(
    database_url: str, conn: Conn, keyring: Keyring
) -> None:
    seed(conn, keyring)
    conn.commit()
    same_id_other_secret = Keyring([generate_key(keyring.active.key_id)]).format()
    unknown_id = Keyring([generate_key("elsewhere")]).format()

    wrong = orgsync(database_url, "keys", "rotate", ORGSYNC_ENCRYPTION_KEYS=same_id_other_secret)
    unknown = orgsync(database_url, "keys", "rotate", ORGSYNC_ENCRYPTION_KEYS=unknown_id)
    garbled = orgsync(database_url, "keys", "rotate", ORGSYNC_ENCRYPTION_KEYS="k1:not-a-key!")

    assert_one_line_error(wrong, "cannot decrypt", "organization:o-keysorg0001")
    assert_one_line_error(unknown, "'test1' is not in the keyring")
    assert_one_line_error(garbled, "keyring entry 1")
    for done in (wrong, unknown, garbled):
        assert keyring.format().split(":", 1)[1] not in done.stderr


def test_an_empty_key_file_is_told_apart_and_generate_writes_a_key_in_it(
    database_url: str, key_file: Path
) -> None:
    settings = file_settings(database_url, key_file)
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_file.touch(mode=0o600)

    with pytest.raises(keys.EmptyKeyFileError, match="holds no key"):
        keys.load_keyring(settings)
    _, key_id = keys.generate(settings, if_missing=True)  # an empty file is no key file

    assert key_id is not None
    assert keys.load_keyring(settings).key_ids == (key_id,)


def test_generate_refuses_a_new_key_while_stored_credentials_need_the_lost_one(
    database_url: str, key_file: Path, conn: Conn, keyring: Keyring
) -> None:
    seed(conn, keyring)
    conn.commit()
    settings = file_settings(database_url, key_file)  # no key file: the key is lost

    with pytest.raises(UserError) as refused:
        keys.generate(settings, if_missing=True)

    message = str(refused.value)
    assert f"sealed under key id(s) {keyring.active.key_id} (3)" in message
    assert "restore the key file" in message and str(key_file) in message
    assert not key_file.exists()
    _, key_id = keys.generate(settings, lost_keys=True)  # said to be gone for good
    assert key_id is not None and key_file.exists()


def test_check_and_rotate_name_the_key_the_stored_credentials_need_never_generate(
    database_url: str, tmp_path: Path, conn: Conn, keyring: Keyring
) -> None:
    seed(conn, keyring)
    conn.commit()
    empty = tmp_path / "keys"
    empty.touch(mode=0o600)
    env = {"ORGSYNC_ENCRYPTION_KEY_FILE": str(empty)}

    rotated = orgsync(database_url, "keys", "rotate", **env)
    checked = orgsync(database_url, "check", "--json", **env)

    assert_one_line_error(rotated, "holds no key", f"key id(s) {keyring.active.key_id}")
    [found] = [c for c in json.loads(checked.stdout) if c["check"] == "keys"]
    assert found["ok"] is False and "holds no key" in found["detail"]
    assert f"key id(s) {keyring.active.key_id}" in found["fix"]
    assert "restore the key file" in found["fix"]
    assert "generate --lost-keys" in found["fix"]  # only as the last resort it is
    assert not found["fix"].startswith("run `orgsync keys generate`")
