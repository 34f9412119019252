from __future__ import annotations

import base64
import hmac
import os

import pytest
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from login_etl.domain.masking import (
    DeterministicMasker,
    HmacSha256,
    TokenMemo,
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


# Tokens made by the construction as released (f9222e8): a token must never change for the
# same key and value (analysts match masked values across years), whatever the code does.
KNOWN_TOKENS = {
    "199.172.111.135": (
        "gAAAAABLBQ6MhQ1T5ZW-WMmh5_UnpXWruvBD785vZJkrclaPr99ylW7bWJawoKSx"
        "1srCjMVlYbk2ieMtSBzUv3y5tHlFw8Mr0g=="
    ),
    "593-47-5928": (
        "gAAAAABLBQ6MfsS3OsTU_GDhZ_n7gk16tuR87NgaaRfzCXLd-8I_c13-lhCkO3DQ"
        "ke6wtO9bKYmZVNXf5JHAFuZgt6P1HQSGkA=="
    ),
    "": (
        "gAAAAABLBQ6MOldQsXwE5bKiH2fg_KcMVUHINDgibHSEfEUKDpyzMkzr1rfGvV5_"
        "xPQtZTfv02oizLYdQZNKCnJSXBSpnb6ogQ=="
    ),
    "é" * 20: (
        "gAAAAABLBQ6MlX89fPs24r74tA9WL-jaFGoI9NskiuU6J7uFs07ArQTdpuZNuQEy"
        "Y7PqystbUDOMWnzo7LyU-QgPXUL8QjO6sFPOERRbNg9HnIUULA7fIP-hRtcq5QfZ"
        "hRj7G1KihRGx"
    ),
    "x" * 40: (
        "gAAAAABLBQ6MW8VDnpNzWKsb0Uk5JPh9CtLncUr-CgWJKbnTU2NPPoh11dZXAw4Y"
        "gXJq7aJxYMrdq3Ah3W2nremENr5ZwbejwGlON3ITc1vVm_Or9X85XEWR3JYZiJZc"
        "ChKU_I9_x3Pm"
    ),
}


@pytest.mark.parametrize(("value", "token"), KNOWN_TOKENS.items())
def test_tokens_never_change(value: str, token: str) -> None:
    assert MASKER.mask(value) == token


def reference_mask(key: bytes, value: str) -> str:
    """The construction as the module docstring states it, with the libraries' own HMAC/CBC."""
    plaintext = value.encode("utf-8")
    iv = hmac.digest(hmac.digest(key, b"login-etl/v1/synthetic-iv", "sha256"), plaintext, "sha256")
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key[16:]), modes.CBC(iv[:16])).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    key_id = hmac.digest(key, b"login-etl/v1/key-id", "sha256")[:4]
    signed = b"\x80" + bytes(4) + key_id + iv[:16] + ciphertext
    return base64.urlsafe_b64encode(signed + hmac.digest(key[:16], signed, "sha256")).decode()


@given(texts)
def test_the_mask_is_the_stated_construction(value: str) -> None:
    assert MASKER.mask(value) == reference_mask(KEY, value)


@pytest.mark.parametrize("size", range(50))
@pytest.mark.parametrize("unit", ["a", "é", "\U0001f600"])
def test_the_mask_is_the_construction_at_every_length(size: int, unit: str) -> None:
    """0..49 characters of 1, 2 and 4 UTF-8 bytes: every padding length, one to 13 blocks."""
    value = unit * size
    assert MASKER.mask(value) == reference_mask(KEY, value)


# Every class of value the function masks: IPv4 and IPv6 addresses, device ids, and any text up
# to the longest device id, so one-block values, longer ones and every padding length mix in
# one batch.
values = st.one_of(
    st.ip_addresses().map(str),
    st.from_regex(r"[0-9]{3}-[0-9]{2}-[0-9]{4}", fullmatch=True),
    texts,
    st.integers(0, MAX_DEVICE_ID_BYTES).map(lambda size: "d" * size),
)


@given(st.lists(values, max_size=40))
def test_a_batch_of_tokens_is_the_reference_construction_value_by_value(batch: list[str]) -> None:
    assert MASKER.mask_many(batch) == [reference_mask(KEY, value) for value in batch]


@pytest.mark.parametrize("value", KNOWN_TOKENS)
def test_a_batch_of_tokens_never_changes(value: str) -> None:
    assert MASKER.mask_many([value, "1.2.3.4", value]) == [
        KNOWN_TOKENS[value],
        MASKER.mask("1.2.3.4"),
        KNOWN_TOKENS[value],
    ]


@given(st.lists(st.lists(values, max_size=12), max_size=6), st.integers(0, 20))
def test_the_memo_gives_every_value_its_token_and_masks_each_once(
    batches: list[list[str]], max_entries: int
) -> None:
    masked: list[str] = []

    def mask_many(batch: list[str]) -> list[str]:
        masked.extend(batch)
        return MASKER.mask_many(batch)

    memo = TokenMemo(mask_many, max_entries)
    for batch in batches:
        before = len(masked)
        tokens = memo(iter(batch))
        assert {value: tokens[value] for value in batch} == {v: MASKER.mask(v) for v in batch}
        assert len(masked[before:]) == len(set(masked[before:]))  # once per batch at most
    if max_entries >= sum(len(set(batch)) for batch in batches):
        assert len(masked) == len(set(masked))  # nothing forgotten: each value masked once


EDGE_BATCHES = {
    "empty": [],
    "one value": ["199.172.111.135"],
    "only values of two blocks or more": ["d" * 16, "é" * 16, "x" * 40],
    # 15, 16, 31 and 32 UTF-8 bytes: the last one-block value, the first two-block one...
    "at the block boundaries": ["a" * 15, "a" * 16, "é" * 15 + "a", "\U0001f600" * 8],
    "one length, one base64 stride": ["1.2.3.4", "5.6.7.8", "9.9.9.9"],
    "zero bytes": ["\0" * 15, "\0" * 16, "\0"],
}


@pytest.mark.parametrize("batch", EDGE_BATCHES.values(), ids=EDGE_BATCHES.keys())
def test_a_batch_at_the_edges_is_the_reference_construction(batch: list[str]) -> None:
    assert MASKER.mask_many(batch) == [reference_mask(KEY, value) for value in batch]
