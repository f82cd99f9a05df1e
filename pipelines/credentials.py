"""Encryption at rest for organization credential configuration.

AES-256-GCM with a fresh 96-bit random nonce per encryption. The associated data binds each
ciphertext to a format version, the key id and the row it belongs to (``bound_to``, e.g.
``"organization:o-abc123"``), so a ciphertext copied onto another row fails to decrypt.

Keys come from a keyring, newest first: the first key encrypts, every key can decrypt. Rotation is
"prepend a new key, ``reseal`` every stored value, then drop the old key". This module never reads
the environment; callers pass the key material in. Neither reprs nor error messages ever contain
key material or plaintext.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = "v1"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the 96-bit nonce NIST recommends for GCM
TAG_BYTES = 16

_AAD_PREFIX = f"orgsync.credentials/{FORMAT_VERSION}"
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_ENTRY_SEPARATORS = re.compile(r"[,\n]")


class CredentialError(Exception):
    """Base class for every error raised by this module."""


class MissingKeysError(CredentialError):
    def __init__(self) -> None:
        super().__init__(
            "no encryption keys configured: set ORGSYNC_ENCRYPTION_KEYS or "
            "ORGSYNC_ENCRYPTION_KEY_FILE, or run `orgsync keys generate`"
        )


class InvalidKeyringError(CredentialError):
    """The keyring text or a key is malformed. Messages never quote key text."""


class UnknownKeyError(CredentialError):
    def __init__(self, key_id: str, known: Iterable[str]) -> None:
        self.key_id = key_id
        super().__init__(
            f"key id {key_id!r} is not in the keyring (known: {', '.join(known)}): "
            "it was rotated away or the wrong keys are configured"
        )


class DecryptionError(CredentialError):
    def __init__(self, key_id: str, bound_to: str) -> None:
        self.key_id = key_id
        self.bound_to = bound_to
        super().__init__(
            f"cannot decrypt: the ciphertext does not belong to {bound_to!r}, was altered, "
            f"or was encrypted with a different key under the id {key_id!r}"
        )


@dataclass(frozen=True)
class Key:
    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.key_id):
            raise InvalidKeyringError(
                "key id must be 1-64 characters of letters, digits, '.', '_' or '-'"
            )
        if not isinstance(self.secret, bytes) or len(self.secret) != KEY_BYTES:
            raise InvalidKeyringError(f"key {self.key_id!r} must be exactly {KEY_BYTES} bytes")


@dataclass(frozen=True)
class Sealed:
    """A stored ciphertext: the id of the key that sealed it and ``nonce || ciphertext+tag``."""

    key_id: str
    blob: bytes = field(repr=False)


def generate_key(key_id: str | None = None) -> Key:
    """A new random key; the default id records when it was made, e.g. ``k20261128T022400``."""
    if key_id is None:
        key_id = "k" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return Key(key_id, AESGCM.generate_key(bit_length=256))


class Keyring:
    """Keys newest first. The first (active) key encrypts; any key decrypts."""

    def __init__(self, keys: Iterable[Key]) -> None:
        self._keys = tuple(keys)
        if not self._keys:
            raise MissingKeysError()
        seen: set[str] = set()
        for key in self._keys:
            if key.key_id in seen:
                raise InvalidKeyringError(f"key id {key.key_id!r} appears more than once")
            seen.add(key.key_id)

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """Parse ``kid1:BASE64URLKEY,kid2:BASE64URLKEY``; the first entry is the active key.

        Entries are separated by commas or newlines; blank entries and ``#`` comments are ignored.
        """
        uncommented = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        entries = [e.strip() for e in _ENTRY_SEPARATORS.split(uncommented) if e.strip()]
        keys: list[Key] = []
        for number, entry in enumerate(entries, start=1):
            key = _parse_entry(number, entry)
            for earlier_number, earlier in enumerate(keys, start=1):
                if earlier.key_id == key.key_id:
                    raise InvalidKeyringError(
                        f"keyring entry {number} repeats key id {key.key_id!r} "
                        f"of entry {earlier_number}"
                    )
            keys.append(key)
        return cls(keys)

    @property
    def active(self) -> Key:
        return self.keys[0]

    @property
    def keys(self) -> tuple[Key, ...]:
        return self._keys

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(key.key_id for key in self.keys)

    def get(self, key_id: str) -> Key:
        """The key with this id; raises ``UnknownKeyError`` when it is not in the keyring."""
        for key in self.keys:
            if key.key_id == key_id:
                return key
        raise UnknownKeyError(key_id, self.key_ids)

    def with_new_key(self, key: Key) -> Keyring:
        """A keyring with ``key`` as the new active key and every current key kept."""
        return Keyring((key, *self.keys))

    def format(self) -> str:
        """The text ``parse`` reads back: ``kid:BASE64URLKEY`` entries joined by commas."""
        return ",".join(
            f"{key.key_id}:{base64.urlsafe_b64encode(key.secret).decode('ascii')}"
            for key in self.keys
        )

    def __repr__(self) -> str:
        return f"Keyring(key_ids={self.key_ids!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Keyring) and self.keys == other.keys

    def __hash__(self) -> int:
        return hash(self.keys)


def _parse_entry(number: int, entry: str) -> Key:
    # Messages name the entry by position only: the text may be a pasted key.
    key_id, colon, encoded = entry.partition(":")
    key_id, encoded = key_id.strip(), encoded.strip()
    if not colon or not key_id or not encoded:
        raise InvalidKeyringError(f"keyring entry {number} is not of the form KEY_ID:BASE64URL_KEY")
    if not _KEY_ID.fullmatch(key_id):
        raise InvalidKeyringError(
            f"keyring entry {number} has an invalid key id: "
            "use 1-64 letters, digits, '.', '_' or '-'"
        )
    if not _BASE64URL.fullmatch(encoded):
        raise InvalidKeyringError(f"keyring entry {number}: the key is not URL-safe base64")
    try:
        secret = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        raise InvalidKeyringError(
            f"keyring entry {number}: the key is not URL-safe base64"
        ) from None
    if len(secret) != KEY_BYTES:
        raise InvalidKeyringError(
            f"keyring entry {number}: the key decodes to {len(secret)} bytes, "
            f"AES-256 needs {KEY_BYTES}"
        )
    return Key(key_id, secret)


def _associated_data(key_id: str, bound_to: str) -> bytes:
    # Key ids cannot contain "|", so the encoding is unambiguous whatever bound_to holds.
    if not bound_to:
        raise ValueError("bound_to must name the row the ciphertext belongs to")
    return f"{_AAD_PREFIX}|{key_id}|{bound_to}".encode()


def encrypt(keyring: Keyring, plaintext: bytes, *, bound_to: str) -> Sealed:
    key = keyring.active
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(key.secret).encrypt(
        nonce, plaintext, _associated_data(key.key_id, bound_to)
    )
    return Sealed(key.key_id, nonce + ciphertext)


def decrypt(keyring: Keyring, sealed: Sealed, *, bound_to: str) -> bytes:
    key = keyring.get(sealed.key_id)
    aad = _associated_data(key.key_id, bound_to)
    if len(sealed.blob) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError(sealed.key_id, bound_to)
    nonce, ciphertext = sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:]
    try:
        return AESGCM(key.secret).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise DecryptionError(sealed.key_id, bound_to) from None


def reseal(keyring: Keyring, sealed: Sealed, *, bound_to: str) -> Sealed:
    """Re-encrypt under the active key; an already-current value is checked and returned as is."""
    plaintext = decrypt(keyring, sealed, bound_to=bound_to)
    if sealed.key_id == keyring.active.key_id:
        return sealed
    return encrypt(keyring, plaintext, bound_to=bound_to)


def seal_json(keyring: Keyring, obj: Mapping[str, Any], bound_to: str) -> Sealed:
    payload = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return encrypt(keyring, payload.encode(), bound_to=bound_to)


def open_json(keyring: Keyring, sealed: Sealed, bound_to: str) -> dict[str, Any]:
    plaintext = decrypt(keyring, sealed, bound_to=bound_to)
    try:
        obj = json.loads(plaintext)
    except ValueError:
        # `from None`: a JSONDecodeError carries the whole decrypted document in `.doc`.
        raise CredentialError(f"the value bound to {bound_to!r} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise CredentialError(f"the value bound to {bound_to!r} is not a JSON object")
    return obj
