from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orgsync.pipelines.credentials import (
    CredentialError,
    DecryptionError,
    InvalidKeyringError,
    Key,
    Keyring,
    MissingKeysError,
    Sealed,
    UnknownKeyError,
    decrypt,
    encrypt,
    generate_key,
    open_json,
    reseal,
    seal_json,
)

ORG_ROW = "organization:o-abc123"
OTHER_ROW = "organization:o-zzz999"

SECRET_ONE = bytes(range(32))
SECRET_TWO = bytes(range(100, 132))
OLD = Key("k20250101T000000", SECRET_ONE)
NEW = Key("k20261128T022400", SECRET_TWO)


def b64(secret: bytes) -> str:
    return base64.urlsafe_b64encode(secret).decode()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring([OLD])


def test_plaintext_survives_a_round_trip(keyring: Keyring) -> None:
    sealed = encrypt(keyring, b"role config", bound_to=ORG_ROW)

    assert sealed.key_id == OLD.key_id
    assert b"role config" not in sealed.blob
    assert decrypt(keyring, sealed, bound_to=ORG_ROW) == b"role config"


def test_each_encryption_uses_a_fresh_nonce(keyring: Keyring) -> None:
    first = encrypt(keyring, b"same", bound_to=ORG_ROW)
    second = encrypt(keyring, b"same", bound_to=ORG_ROW)

    assert first.blob[:12] != second.blob[:12]
    assert len(first.blob) == 12 + len(b"same") + 16


def test_a_ciphertext_copied_to_another_row_does_not_decrypt(keyring: Keyring) -> None:
    sealed = encrypt(keyring, b"role config", bound_to=ORG_ROW)

    with pytest.raises(DecryptionError, match="does not belong to 'organization:o-zzz999'"):
        decrypt(keyring, sealed, bound_to=OTHER_ROW)


def test_a_tampered_blob_does_not_decrypt(keyring: Keyring) -> None:
    sealed = encrypt(keyring, b"role config", bound_to=ORG_ROW)
    flipped = bytes([sealed.blob[-1] ^ 0x01])

    with pytest.raises(DecryptionError):
        decrypt(keyring, Sealed(sealed.key_id, sealed.blob[:-1] + flipped), bound_to=ORG_ROW)


def test_a_truncated_blob_does_not_decrypt(keyring: Keyring) -> None:
    with pytest.raises(DecryptionError):
        decrypt(keyring, Sealed(OLD.key_id, b"short"), bound_to=ORG_ROW)


def test_a_different_key_under_the_same_id_does_not_decrypt(keyring: Keyring) -> None:
    sealed = encrypt(keyring, b"role config", bound_to=ORG_ROW)
    impostor = Keyring([Key(OLD.key_id, SECRET_TWO)])

    with pytest.raises(DecryptionError, match="different key"):
        decrypt(impostor, sealed, bound_to=ORG_ROW)


def test_relabelling_a_ciphertext_with_another_key_id_does_not_decrypt() -> None:
    same_secret_twice = Keyring([Key("a", SECRET_ONE), Key("b", SECRET_ONE)])
    sealed = encrypt(same_secret_twice, b"x", bound_to=ORG_ROW)

    with pytest.raises(DecryptionError):
        decrypt(same_secret_twice, Sealed("b", sealed.blob), bound_to=ORG_ROW)


def test_an_unknown_key_id_is_reported_by_name(keyring: Keyring) -> None:
    sealed = Sealed("k-gone", encrypt(keyring, b"x", bound_to=ORG_ROW).blob)

    with pytest.raises(UnknownKeyError, match="'k-gone' is not in the keyring") as raised:
        decrypt(keyring, sealed, bound_to=ORG_ROW)
    assert raised.value.key_id == "k-gone"
    assert "rotated away" in str(raised.value)


def test_an_empty_bound_to_is_refused(keyring: Keyring) -> None:
    with pytest.raises(ValueError, match="bound_to"):
        encrypt(keyring, b"x", bound_to="")


def test_reseal_moves_a_value_to_the_active_key_while_old_values_still_decrypt() -> None:
    old_keyring = Keyring([OLD])
    stored = encrypt(old_keyring, b"role config", bound_to=ORG_ROW)
    rotated = old_keyring.with_new_key(NEW)

    assert decrypt(rotated, stored, bound_to=ORG_ROW) == b"role config"
    moved = reseal(rotated, stored, bound_to=ORG_ROW)

    assert moved.key_id == NEW.key_id
    assert decrypt(Keyring([NEW]), moved, bound_to=ORG_ROW) == b"role config"
    with pytest.raises(UnknownKeyError):
        decrypt(Keyring([NEW]), stored, bound_to=ORG_ROW)


def test_reseal_returns_a_value_already_under_the_active_key_unchanged(keyring: Keyring) -> None:
    stored = encrypt(keyring, b"role config", bound_to=ORG_ROW)

    assert reseal(keyring, stored, bound_to=ORG_ROW) is stored


def test_reseal_refuses_a_value_bound_to_another_row() -> None:
    rotated = Keyring([OLD]).with_new_key(NEW)
    stored = encrypt(Keyring([OLD]), b"x", bound_to=ORG_ROW)

    with pytest.raises(DecryptionError):
        reseal(rotated, stored, bound_to=OTHER_ROW)


def test_json_payloads_round_trip(keyring: Keyring) -> None:
    config = {
        "role_arn": "arn:aws:iam::123456789012:role/OrgSync",
        "external_id": "ext-123",
        "session_duration_seconds": 3600,
    }

    sealed = seal_json(keyring, config, ORG_ROW)

    assert open_json(keyring, sealed, bound_to=ORG_ROW) == config


def test_open_json_rejects_a_payload_that_is_not_an_object(keyring: Keyring) -> None:
    not_json = encrypt(keyring, b"external_id=secret-ext", bound_to=ORG_ROW)
    a_list = encrypt(keyring, b"[1, 2]", bound_to=ORG_ROW)

    with pytest.raises(CredentialError, match="not valid JSON") as raised:
        open_json(keyring, not_json, ORG_ROW)
    assert "secret-ext" not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    with pytest.raises(CredentialError, match="not a JSON object"):
        open_json(keyring, a_list, ORG_ROW)


def test_parse_reads_entries_newest_first_from_env_text() -> None:
    keyring = Keyring.parse(f"{NEW.key_id}:{b64(SECRET_TWO)},{OLD.key_id}:{b64(SECRET_ONE)}")

    assert keyring.active == NEW
    assert keyring.key_ids == (NEW.key_id, OLD.key_id)
    assert keyring.get(OLD.key_id) == OLD


def test_parse_reads_a_key_file_with_comments_blank_lines_and_unpadded_keys() -> None:
    text = (
        "# orgsync encryption keys, newest first\n"
        "\n"
        f"  {NEW.key_id}:{b64(SECRET_TWO).rstrip('=')}  # added 2026-11-28\n"
        f"{OLD.key_id}:{b64(SECRET_ONE)},\n"
        "\n"
    )

    assert Keyring.parse(text).keys == (NEW, OLD)


def test_format_is_read_back_by_parse() -> None:
    keyring = Keyring([NEW, OLD])

    assert Keyring.parse(keyring.format()) == keyring


def test_generated_keys_are_random_256_bit_keys_with_a_timestamp_id() -> None:
    first, second = generate_key(), generate_key("manual-1")

    assert re.fullmatch(r"k\d{8}T\d{6}", first.key_id)
    assert second.key_id == "manual-1"
    assert len(first.secret) == 32
    assert first.secret != second.secret


def test_with_new_key_prepends_and_keeps_the_old_keys() -> None:
    rotated = Keyring([OLD]).with_new_key(NEW)

    assert rotated.active == NEW
    assert rotated.key_ids == (NEW.key_id, OLD.key_id)


def test_with_new_key_refuses_a_repeated_key_id() -> None:
    with pytest.raises(InvalidKeyringError, match="more than once"):
        Keyring([OLD]).with_new_key(Key(OLD.key_id, SECRET_TWO))


@pytest.mark.parametrize("text", ["", "  \n# only a comment\n", ",,\n,"])
def test_an_empty_keyring_raises_missing_keys(text: str) -> None:
    with pytest.raises(MissingKeysError, match="ORGSYNC_ENCRYPTION_KEYS"):
        Keyring.parse(text)
    with pytest.raises(MissingKeysError, match="orgsync keys generate"):
        Keyring([])


LEAKY = b64(b"s3cr3t-material-should-never-leak")  # 33 bytes: wrong length


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"good:{b64(SECRET_ONE)},{LEAKY}", "entry 2 is not of the form"),
        (f"good:{b64(SECRET_ONE)},bad:{LEAKY}", "entry 2: the key decodes to 33 bytes"),
        (f"bad:{LEAKY.replace('-', '+')}!", "entry 1: the key is not URL-safe base64"),
        (f"bad:{b64(SECRET_ONE)[:-1]}x", "entry 1: the key decodes to"),
        (f"bad id:{b64(SECRET_ONE)}", "entry 1 has an invalid key id"),
        (f"{LEAKY}{LEAKY}:{b64(SECRET_ONE)}", "entry 1 has an invalid key id"),
        (f"dup:{b64(SECRET_ONE)}\ndup:{b64(SECRET_TWO)}", "entry 2 repeats key id 'dup'"),
        (f"empty:,ok:{b64(SECRET_ONE)}", "entry 1 is not of the form"),
    ],
)
def test_parse_errors_name_the_entry_without_the_key_text(text: str, reason: str) -> None:
    with pytest.raises(InvalidKeyringError, match=re.escape(reason)) as raised:
        Keyring.parse(text)

    message = str(raised.value)
    assert LEAKY[:20] not in message
    assert b64(SECRET_ONE)[:20] not in message
    assert b64(SECRET_TWO)[:20] not in message


def test_keys_must_be_32_bytes() -> None:
    with pytest.raises(InvalidKeyringError, match="exactly 32 bytes") as raised:
        Key("short", b"sixteen byte key")
    assert "sixteen" not in str(raised.value)


def test_repr_and_str_of_keys_and_keyrings_hide_the_secret() -> None:
    keyring = Keyring([NEW, OLD])
    shown = " ".join([repr(NEW), str(NEW), repr(keyring), str(keyring), repr([NEW])])

    for secret in (SECRET_ONE, SECRET_TWO):
        assert repr(secret) not in shown
        assert secret.hex() not in shown
        assert b64(secret) not in shown
    assert NEW.key_id in repr(NEW) and NEW.key_id in repr(keyring)


@given(
    plaintext=st.binary(max_size=4096),
    bound_to=st.text(min_size=1, max_size=200),
)
def test_any_bytes_round_trip_under_any_row_name(plaintext: bytes, bound_to: str) -> None:
    keyring = Keyring([NEW, OLD])

    sealed = encrypt(keyring, plaintext, bound_to=bound_to)

    assert decrypt(keyring, sealed, bound_to=bound_to) == plaintext
    with pytest.raises(DecryptionError):
        decrypt(keyring, sealed, bound_to=bound_to + "x")
