"""Where the credential keys come from, `orgsync keys generate` and `orgsync keys rotate`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg

from pipelines.credentials import Keyring, MissingKeysError, Sealed, generate_key, reseal
from services.errors import UserError
from services.settings import Settings


def load_keyring(settings: Settings) -> Keyring:
    """ORGSYNC_ENCRYPTION_KEYS when set, else the key file; MissingKeysError without either."""
    if settings.encryption_keys:
        return Keyring.parse(settings.encryption_keys)
    try:
        return Keyring.parse(settings.encryption_key_file.read_text())
    except FileNotFoundError:
        raise MissingKeysError() from None


def write_key_file(path: Path, keyring: Keyring) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# orgsync credential keys, newest first. Keep this file secret.\n")
        f.write(keyring.format().replace(",", "\n") + "\n")
    tmp.replace(path)  # atomic: a reader sees the old keyring or the new one


def generate(settings: Settings, *, if_missing: bool = False) -> tuple[Path, str | None]:
    """Create the key file with one new key. Returns its path and the new key id (None if kept)."""
    path = settings.encryption_key_file
    if settings.encryption_keys:
        raise UserError(
            "ORGSYNC_ENCRYPTION_KEYS is set: keys come from the environment, not a file"
        )
    if path.exists():
        if if_missing:
            return path, None
        raise UserError(f"{path} exists already; `orgsync keys rotate` adds a newer key")
    key = generate_key()
    write_key_file(path, Keyring([key]))
    return path, key.key_id


SEALED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("organizations", "org_id", "organization:{}"),
    ("accounts", "account_id", "account:{}"),
)


def rotate(settings: Settings, conn: psycopg.Connection[dict[str, Any]]) -> tuple[str, int]:
    """Add a new active key to the key file and reseal every credential under it.

    Safe to interrupt and run again: each row is resealed in its own small transaction, the
    old keys stay in the file, and rows already under the active key are left as they are.
    """
    if settings.encryption_keys:
        raise UserError(
            "ORGSYNC_ENCRYPTION_KEYS is set: put a new key first in it, then run "
            "`orgsync keys rotate --reseal-only`"
        )
    keyring = load_keyring(settings).with_new_key(generate_key())
    write_key_file(settings.encryption_key_file, keyring)
    return keyring.active.key_id, reseal_all(keyring, conn)


def reseal_all(keyring: Keyring, conn: psycopg.Connection[dict[str, Any]]) -> int:
    count = 0
    for table, key, bound in SEALED_COLUMNS:
        rows = conn.execute(
            f"SELECT {key} AS id, credentials_key_id, credentials FROM {table}"
            " WHERE credentials IS NOT NULL AND credentials_key_id <> %s",
            (keyring.active.key_id,),
        ).fetchall()
        for row in rows:
            sealed = Sealed(row["credentials_key_id"], bytes(row["credentials"]))
            new = reseal(keyring, sealed, bound_to=bound.format(row["id"]))
            with conn.transaction():
                conn.execute(
                    f"UPDATE {table} SET credentials_key_id = %s, credentials = %s"
                    f" WHERE {key} = %s AND credentials_key_id = %s",
                    (new.key_id, new.blob, row["id"], sealed.key_id),
                )
            count += 1
    return count
