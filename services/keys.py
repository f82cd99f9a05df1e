"""Where the credential keys come from, `orgsync keys generate` and `orgsync keys rotate`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from orgsync.pipelines.credentials import (
    Key,
    Keyring,
    MissingKeysError,
    Sealed,
    decrypt,
    generate_key,
    reseal,
)
from orgsync.services.errors import UserError
from orgsync.services.logs import get_logger
from orgsync.services.settings import Settings


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


log = get_logger("orgsync.keys")  # key changes are logged (OWASP), never the keys

SEALED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("organizations", "org_id", "organization:{}"),
    ("accounts", "account_id", "account:{}"),
)


def fresh_key(keyring: Keyring) -> Key:
    """A new key whose id (the time, to the second) no key in `keyring` has already."""
    key = generate_key()
    suffix = 1
    while key.key_id in keyring.key_ids:  # a second rotation within the same second
        suffix += 1
        key = Key(f"{key.key_id.split('-')[0]}-{suffix}", key.secret)
    return key


def rotate(settings: Settings, conn: psycopg.Connection[dict[str, Any]]) -> tuple[str, int]:
    """Add a new active key to the key file and reseal every credential under it.

    Safe to interrupt and run again: the key file is replaced atomically before any row is
    touched and keeps the old keys, each row is resealed in its own small transaction, and rows
    already under the active key are left as they are. With ORGSYNC_ENCRYPTION_KEYS the operator
    puts the new key first there; this then only reseals under it.
    """
    keyring = load_keyring(settings)
    # a wrong key fails here, in one line, before the key file changes
    opened = reseal_all(keyring, conn, check_only=True)
    if not settings.encryption_keys:
        keyring = keyring.with_new_key(fresh_key(keyring))
        write_key_file(settings.encryption_key_file, keyring)
    resealed = reseal_all(keyring, conn)
    log.info(
        "credentials_resealed",
        active_key_id=keyring.active.key_id,
        checked=opened,
        resealed=resealed,
    )
    return keyring.active.key_id, resealed


def reseal_all(
    keyring: Keyring, conn: psycopg.Connection[dict[str, Any]], *, check_only: bool = False
) -> int:
    """Reseal every organization and standalone-account credential under the active key.

    With `check_only`, open every credential (under any key) and change nothing: a wrong or
    missing key raises its CredentialError.
    """
    count = 0
    for table, key, bound in SEALED_COLUMNS:
        names = {"table": sql.Identifier(table), "key": sql.Identifier(key)}
        rows = conn.execute(
            sql.SQL(
                "SELECT {key} AS id, credentials_key_id, credentials FROM {table}"
                " WHERE credentials IS NOT NULL AND (%s OR credentials_key_id <> %s)"
            ).format(**names),
            (check_only, keyring.active.key_id),
        ).fetchall()
        update = sql.SQL(
            "UPDATE {table} SET credentials_key_id = %s, credentials = %s"
            " WHERE {key} = %s AND credentials_key_id = %s"
        ).format(**names)
        for row in rows:
            sealed = Sealed(row["credentials_key_id"], bytes(row["credentials"]))
            count += 1
            if check_only:
                decrypt(keyring, sealed, bound_to=bound.format(row["id"]))
                continue
            new = reseal(keyring, sealed, bound_to=bound.format(row["id"]))
            with conn.transaction():
                # a row another rotation resealed meanwhile no longer matches: left alone
                conn.execute(update, (new.key_id, new.blob, row["id"], sealed.key_id))
    return count
