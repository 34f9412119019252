"""Several keys: every token recovers under the ring, rotation converges, failures are per value."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_etl.domain.keyring import Keyring, UnmaskError, UnmaskFailure
from login_etl.domain.masking import DeterministicMasker, token_prefix
from login_etl_cli.audit import key_ids_of
from login_etl_cli.unmask import parse_filters, unmask_all

texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=60)
keys = st.binary(min_size=32, max_size=32)
OLD, NEW, STRANGER = (DeterministicMasker(bytes([i]) * 32) for i in (1, 2, 3))
RING = Keyring([OLD, NEW], NEW.key_id)


@given(st.lists(keys, min_size=1, max_size=4, unique=True), texts, st.data())
def test_a_token_of_any_key_in_the_ring_recovers_its_value(
    raw_keys: list[bytes], value: str, data: st.DataObject
) -> None:
    maskers = [DeterministicMasker(k) for k in raw_keys]
    ring = Keyring(maskers, maskers[-1].key_id)
    maker = data.draw(st.sampled_from(maskers))

    assert ring.unmask(maker.mask(value)) == value


@given(keys, texts)
def test_deterministic_per_key_and_the_prefix_names_the_key(key: bytes, value: str) -> None:
    masker = DeterministicMasker(key)

    assert masker.mask(value) == DeterministicMasker(key).mask(value)
    assert masker.mask(value).startswith(token_prefix(masker.key_id))


@given(texts)
def test_rekeying_makes_old_and_new_tokens_of_a_value_equal_again(value: str) -> None:
    old_token, new_token = OLD.mask(value), NEW.mask(value)
    assert old_token != new_token  # the rotation window: one device, two masked values

    assert RING.remask(old_token) == RING.remask(new_token) == new_token


@given(texts)
def test_a_key_outside_the_ring_is_named_not_guessed(value: str) -> None:
    with pytest.raises(UnmaskError) as raised:
        RING.unmask(STRANGER.mask(value))

    assert raised.value.failure is UnmaskFailure.UNKNOWN_KEY
    assert raised.value.key_id == STRANGER.key_id


@given(texts, st.data())
def test_tampering_with_any_byte_is_an_error_never_a_wrong_value(
    value: str, data: st.DataObject
) -> None:
    raw = bytearray(base64.urlsafe_b64decode(OLD.mask(value)))
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode()

    with pytest.raises(UnmaskError):
        RING.unmask(tampered)


@given(st.text(max_size=200))
def test_garbage_is_reported_as_such(garbage: str) -> None:
    with pytest.raises(UnmaskError):
        RING.unmask(garbage)


def test_one_bad_token_does_not_stop_the_others() -> None:
    tokens = [NEW.mask("10.0.0.1"), "not-a-token", STRANGER.mask("x"), OLD.mask("593-47-5928")]

    results = unmask_all(RING, tokens)

    assert [r.value for r in results] == ["10.0.0.1", None, None, "593-47-5928"]
    assert [r.error is None for r in results] == [True, False, False, True]
    assert results[1].error == "not a Fernet token"
    # The key id in the one form the CLI prints everywhere (keys list, SSM names, audit rows).
    assert results[2].error == (
        f"made with a key that is not in the keyring (key id {STRANGER.key_id:08x})"
    )


def test_the_ring_needs_its_current_key_and_hides_key_material() -> None:
    with pytest.raises(ValueError, match="not in the keyring"):
        Keyring([OLD], NEW.key_id)
    shown = repr(RING)
    assert f"current={NEW.key_id:08x}" in shown
    assert f"{OLD.key_id:08x}" in shown
    assert "\\x01" not in shown
    assert base64.urlsafe_b64encode(bytes([1]) * 32).decode() not in shown


def test_filters_name_plain_columns_only() -> None:
    assert parse_filters(["user_id=a=b", "locale=RU"]) == {"user_id": "a=b", "locale": "RU"}
    with pytest.raises(ValueError, match="ip is masked, it cannot be matched"):
        parse_filters(["masked_ip=x"])
    for bad in ["user_id", "1=1; DROP TABLE user_logins", "nope=1"]:
        with pytest.raises(ValueError, match="column=value"):
            parse_filters([bad])


def test_the_audit_names_the_keys_the_tokens_name_without_decrypting() -> None:
    tokens = [NEW.mask("a"), OLD.mask("b"), "garbage", "é", None, STRANGER.mask("c"), NEW.mask("d")]

    assert key_ids_of(tokens) == tuple(sorted([OLD.key_id, NEW.key_id, STRANGER.key_id]))
    assert key_ids_of([]) == ()
