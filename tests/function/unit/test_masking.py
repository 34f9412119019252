from __future__ import annotations

import base64
import hmac
import os

import pytest
from cryptography.fernet import Fernet, InvalidToken
from hypothesis import given, settings
from hypothesis import strategies as st

from login_etl.domain.masking import (
    DeterministicMasker,
    HmacSha256,
    max_plaintext_bytes,
    token_key_id,
    token_length,
)
from login_etl.domain.validation import MAX_DEVICE_ID_BYTES

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
MASKER = DeterministicMasker(KEY)
FERNET = Fernet(base64.urlsafe_b64encode(KEY))

texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=60)


@given(texts)
def test_deterministic_and_decryptable_by_plain_fernet(value: str) -> None:
    token = MASKER.mask(value)
    assert MASKER.mask(value) == token
    assert DeterministicMasker(KEY).mask(value) == token
    assert FERNET.decrypt(token).decode() == value


@given(texts, texts)
def test_distinct_inputs_give_distinct_tokens(a: str, b: str) -> None:
    assert (MASKER.mask(a) == MASKER.mask(b)) == (a == b)


def test_plain_fernet_would_hide_duplicates() -> None:
    """The classic mistake this module exists to avoid."""
    assert FERNET.encrypt(b"593-47-5928") != FERNET.encrypt(b"593-47-5928")


@given(texts)
def test_token_length_formula(value: str) -> None:
    assert len(MASKER.mask(value)) == token_length(len(value.encode()))


def test_every_valid_input_fits_varchar_256() -> None:
    assert len(MASKER.mask("f" * MAX_DEVICE_ID_BYTES)) <= 256
    assert token_length(MAX_DEVICE_ID_BYTES + 1) > 256
    assert len(MASKER.mask("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")) <= 256
    assert max_plaintext_bytes(256) == MAX_DEVICE_ID_BYTES


@given(texts)
def test_other_key_gives_other_token_that_does_not_decrypt_here(value: str) -> None:
    other = DeterministicMasker(OTHER_KEY)
    token = other.mask(value)
    assert token != MASKER.mask(value)
    with pytest.raises(InvalidToken):
        MASKER.unmask(token)


@settings(max_examples=50)
@given(texts, st.data())
def test_tampering_with_any_byte_is_detected(value: str, data: st.DataObject) -> None:
    raw = bytearray(base64.urlsafe_b64decode(MASKER.mask(value)))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(InvalidToken):
        MASKER.unmask(base64.urlsafe_b64encode(bytes(raw)).decode())


def test_token_carries_the_key_id() -> None:
    assert token_key_id(MASKER.mask("x")) == MASKER.key_id
    assert DeterministicMasker(OTHER_KEY).key_id != MASKER.key_id


def test_repr_shows_no_key_material() -> None:
    text = repr(MASKER)
    assert KEY.hex() not in text
    assert base64.urlsafe_b64encode(KEY).decode() not in text


def test_rejects_wrong_key_size() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        DeterministicMasker(os.urandom(16))


@given(st.binary(max_size=100), st.binary(max_size=300))
def test_the_precomputed_hmac_is_hmac_sha256(key: bytes, message: bytes) -> None:
    assert HmacSha256(key).digest(message) == hmac.digest(key, message, "sha256")
