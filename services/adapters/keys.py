"""Where the credential keys come from, `orgsync keys generate` and `orgsync keys rotate`."""

from __future__ import annotations

import fcntl
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from orgsync.pipelines.credentials import (
    InvalidKeyringError,
    Key,
    Keyring,
    MissingKeysError,
    Sealed,
    UnknownKeyError,
    decrypt,
    generate_key,
    reseal,
)
from orgsync.pipelines.sql import load
from orgsync.services.errors import UserError
from orgsync.services.logs import get_logger
from orgsync.services.settings import Settings

SQL = load("orgsync.services.adapters")


class EmptyKeyFileError(InvalidKeyringError):
    """The key file exists and holds no key: told apart from a missing one, which `orgsync
    keys generate` creates, and from a malformed one."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"the key file {path} holds no key")


def load_keyring(settings: Settings) -> Keyring:
    """ORGSYNC_ENCRYPTION_KEYS when set, else the key file; MissingKeysError without either,
    EmptyKeyFileError for a key file without a key."""
    if settings.encryption_keys:
        return Keyring.parse(settings.encryption_keys)
    text = read_key_file(settings.encryption_key_file)  # MissingKeysError: no file at all
    try:
        return Keyring.parse(text)
    except MissingKeysError:  # the file is there: parse found no entry in it
        raise EmptyKeyFileError(settings.encryption_key_file) from None


def stored_key_ids(conn: psycopg.Connection[dict[str, Any]]) -> dict[str, int]:
    """Key id -> how many stored credentials are sealed under it."""
    return {row["key_id"]: row["n"] for row in conn.execute(SQL["stored_key_ids"]).fetchall()}


def stored_key_ids_if_known(settings: Settings) -> dict[str, int] | None:
    """`stored_key_ids` of the configured database, or None when it cannot be read (not
    reachable, not created or migrated yet): then nothing is known to be sealed."""
    try:
        with psycopg.connect(
            settings.database_url, row_factory=dict_row, connect_timeout=5
        ) as conn:
            return stored_key_ids(conn)
    except psycopg.Error:
        return None


def keep_the_keys_advice(needed: dict[str, int], path: Path) -> str:
    """What to do when the keys that stored credentials need are not here: never a new key,
    which would open none of them."""
    ids = ", ".join(f"{key_id} ({n})" for key_id, n in needed.items())
    return (
        f"the database holds {sum(needed.values())} credential(s) sealed under key id(s) {ids}:"
        f" restore the key file holding them (from your backup) to {path}, or give them in"
        " ORGSYNC_ENCRYPTION_KEYS; a new key opens none of them (if they are lost for good:"
        " `orgsync keys generate --lost-keys`, then give every organization's roles again"
        " with `orgsync update ORG --org-role-arn ... --member-role-name ...`)"
    )


def read_key_file(path: Path) -> str:
    """The key file's text: a regular file, not a symlink, that only its owner can read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise MissingKeysError() from None
    except OSError as error:  # ELOOP: a symlink
        raise InvalidKeyringError(
            f"cannot open the key file {path} ({error.strerror}): it must be a regular file,"
            " not a symlink"
        ) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InvalidKeyringError(f"the key file {path} is not a regular file")
        if mode & 0o077:
            raise InvalidKeyringError(
                f"the key file {path} can be read or written by others (mode"
                f" {stat.S_IMODE(mode):04o}): run `chmod 600 {path}`"
            )
        with os.fdopen(os.dup(fd)) as f:
            return f.read()
    finally:
        os.close(fd)


def write_key_file(path: Path, keyring: Keyring, *, replace: bool = True) -> None:
    """Write the keyring to `path`, mode 0600, atomically; a new folder is made mode 0700.

    The temporary file is created with O_EXCL | O_NOFOLLOW under a name of its own, so neither
    a leftover file (whatever its mode) nor a symlink planted there is written through. Without
    `replace`, an existing key file is never overwritten (FileExistsError).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("# orgsync credential keys, newest first. Keep this file secret.\n")
            f.write(keyring.format().replace(",", "\n") + "\n")
            f.flush()
            os.fsync(f.fileno())
        if replace:
            tmp.replace(path)  # atomic: a reader sees the old keyring or the new one
        else:
            os.link(tmp, path)  # atomic, and fails when the file exists
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def key_file_lock(path: Path) -> Iterator[None]:
    """Held while the key file is created or rotated: two at once would each write a key."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def generate(
    settings: Settings, *, if_missing: bool = False, lost_keys: bool = False
) -> tuple[Path, str | None]:
    """Create the key file with one new key. Returns its path and the new key id (None if kept).

    A key file without a key counts as missing. A new key is refused while the database holds
    credentials sealed under keys that are not here, unless `lost_keys` says they are gone for
    good: the advice to generate must never be what makes them unreadable."""
    path = settings.encryption_key_file
    if settings.encryption_keys:
        raise UserError(
            "ORGSYNC_ENCRYPTION_KEYS is set: keys come from the environment, not a file"
        )
    with key_file_lock(path):
        empty = False
        if os.path.lexists(path):
            try:
                load_keyring(settings)
            except EmptyKeyFileError:
                empty = True
            except InvalidKeyringError:
                pass
            if not empty:
                if if_missing and path.is_file() and not path.is_symlink():
                    return path, None
                raise UserError(f"{path} exists already; `orgsync keys rotate` adds a newer key")
        needed = stored_key_ids_if_known(settings)
        if needed and not lost_keys:
            raise UserError(f"no key written: {keep_the_keys_advice(needed, path)}")
        key = generate_key()
        write_key_file(path, Keyring([key]), replace=empty)
    if needed:
        log.warning("keys_replaced_lost", key_id=key.key_id, unreadable=sum(needed.values()))
    return path, key.key_id


class ReloadingKeyring(Keyring):
    """A worker's keyring: read again when the key file changes (checked at most once a
    second), and once more when asked for a key id it does not know, so that a worker running
    across `orgsync keys rotate` opens credentials resealed under the new key.

    ORGSYNC_ENCRYPTION_KEYS is read once: a process's environment cannot change under it, so
    a new value there takes a restart (SIGHUP to `orgsync worker` restarts its processes).
    """

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._checked = clock()
        self._stamp = self._file_stamp()
        self._current = load_keyring(settings)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        if self._settings.encryption_keys:
            return None
        try:
            st = os.stat(self._settings.encryption_key_file, follow_symlinks=False)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def reload(self) -> Keyring:
        with self._lock:
            stamp = self._file_stamp()
            keyring = load_keyring(self._settings)
            if keyring != self._current:
                log.info(
                    "keyring_reloaded",
                    active_key_id=keyring.active.key_id,
                    key_ids=list(keyring.key_ids),
                )
            self._current, self._stamp, self._checked = keyring, stamp, self._clock()
            return keyring

    @property
    def current(self) -> Keyring:
        if self._clock() - self._checked >= 1.0:
            self._checked = self._clock()
            if self._file_stamp() != self._stamp:
                return self.reload()
        return self._current

    @property
    def keys(self) -> tuple[Key, ...]:
        return self.current.keys

    def get(self, key_id: str) -> Key:
        try:
            return self.current.get(key_id)
        except UnknownKeyError:
            return self.reload().get(key_id)

    def __repr__(self) -> str:
        return f"ReloadingKeyring(key_ids={self.key_ids!r})"


log = get_logger("orgsync.keys")  # key changes are logged (OWASP), never the keys

SEALED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("organizations", "org_id", "organization:{}"),
    ("accounts", "account_id", "account:{}"),
    ("webhooks", "webhook_id", "webhook:{}"),  # services/use_cases/webhooks.py
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
    try:
        keyring = load_keyring(settings)
    except (MissingKeysError, EmptyKeyFileError) as error:
        needed = stored_key_ids(conn)
        if not needed:
            raise
        advice = keep_the_keys_advice(needed, settings.encryption_key_file)
        raise UserError(f"nothing to rotate: {error}; {advice}") from None
    # a wrong key fails here, in one line, before the key file changes
    opened = reseal_all(keyring, conn, check_only=True)
    if not settings.encryption_keys:
        with key_file_lock(settings.encryption_key_file):
            keyring = load_keyring(settings)  # as it is now, under the lock
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


RESEAL_PASSES = 5


def reseal_all(
    keyring: Keyring, conn: psycopg.Connection[dict[str, Any]], *, check_only: bool = False
) -> int:
    """Reseal every organization and standalone-account credential, and every webhook secret,
    under the active key.

    A row is replaced only if it is still what was read (key id and ciphertext): an update
    committed meanwhile (a worker that had not yet read the new key still seals under the old
    one) is kept, and resealed in a later pass. With `check_only`, open every credential
    (under any key) and change nothing: a wrong or missing key raises its CredentialError.
    """
    if check_only:
        return sum(
            _reseal_table(keyring, conn, *columns, check_only=True)[0] for columns in SEALED_COLUMNS
        )
    total = 0
    for columns in SEALED_COLUMNS:
        for _ in range(RESEAL_PASSES):
            resealed, changed_meanwhile = _reseal_table(keyring, conn, *columns)
            total += resealed
            if not changed_meanwhile:
                break
    return total


def _reseal_table(
    keyring: Keyring,
    conn: psycopg.Connection[dict[str, Any]],
    table: str,
    key: str,
    bound: str,
    *,
    check_only: bool = False,
) -> tuple[int, int]:
    """(rows opened or resealed, rows changed since they were read)."""
    names = {"table": sql.Identifier(table), "key": sql.Identifier(key)}
    read = sql.SQL(SQL["sealed_credentials"]).format(**names)
    rows = conn.execute(read, (check_only, keyring.active.key_id)).fetchall()
    update = sql.SQL(SQL["reseal_credentials"]).format(**names)
    count = changed = 0
    for row in rows:
        sealed = Sealed(row["credentials_key_id"], bytes(row["credentials"]))
        if check_only:
            decrypt(keyring, sealed, bound_to=bound.format(row["id"]))
            count += 1
            continue
        new = reseal(keyring, sealed, bound_to=bound.format(row["id"]))
        with conn.transaction():
            cursor = conn.execute(
                update, (new.key_id, new.blob, row["id"], sealed.key_id, sealed.blob)
            )
        if cursor.rowcount:
            count += 1
        else:
            changed += 1
    return count, changed
