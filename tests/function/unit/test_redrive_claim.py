"""Redrive claims: only a holder of the data key can make one, and it is bound to its body."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from login_etl.domain.errors import InvalidMessageError, Reason
from login_etl.domain.masking import DeterministicMasker
from login_etl.domain.redrive_claim import ClaimKey, ClaimVerifier

DATA_KEY = bytes(range(32))
KEY = ClaimKey(DATA_KEY)
VERIFY = ClaimVerifier([KEY])
OTHER = ClaimKey(bytes(range(1, 33)))

ids = st.text(min_size=1, max_size=128)
bodies = st.text(max_size=300)


def rejected(claim: str, body: str, verify: ClaimVerifier = VERIFY) -> str:
    with pytest.raises(InvalidMessageError) as caught:
        verify(claim, body)
    assert caught.value.reason is Reason.INVALID_REDRIVE_CLAIM
    return caught.value.detail


@given(ids, bodies)
def test_a_signed_claim_verifies_to_its_id(original: str, body: str) -> None:
    assert VERIFY(KEY.sign(original, body), body) == original
    assert ClaimVerifier([OTHER, KEY])(KEY.sign(original, body), body) == original


@given(ids, bodies, bodies)
def test_a_claim_lifted_onto_another_body_is_rejected(original: str, body: str, other: str) -> None:
    assume(body != other)
    assert "does not authenticate" in rejected(KEY.sign(original, body), other)


@given(ids, ids, bodies)
def test_a_claim_with_another_id_is_rejected(original: str, forged: str, body: str) -> None:
    assume(original != forged)
    prefix = KEY.sign(original, body).removesuffix(original)
    assert "does not authenticate" in rejected(prefix + forged, body)


@given(ids, bodies)
def test_a_claim_of_another_key_is_rejected(original: str, body: str) -> None:
    claim = OTHER.sign(original, body)
    assert "not held here" in rejected(claim, body)
    # Naming our key id does not help: the MAC is still the other key's.
    relabelled = claim.replace(f"{OTHER.key_id:08x}", f"{KEY.key_id:08x}", 1)
    assert "does not authenticate" in rejected(relabelled, body)
    # A verifier that holds no key (a function with nothing loaded) accepts nothing.
    rejected(KEY.sign(original, body), body, ClaimVerifier([]))


@given(ids, bodies, st.data())
def test_any_changed_character_is_rejected(original: str, body: str, data: st.DataObject) -> None:
    claim = KEY.sign(original, body)
    position = data.draw(st.integers(0, len(claim) - 1))
    replacement = data.draw(
        st.characters(max_codepoint=0x7F).filter(lambda c: c != claim[position])
    )
    rejected(claim[:position] + replacement + claim[position + 1 :], body)


@given(st.text(max_size=300), bodies)
def test_arbitrary_attribute_values_are_rejected_never_crash(claim: str, body: str) -> None:
    rejected(claim, body)


def test_a_plain_message_id_as_the_attribute_is_rejected() -> None:
    """The format before signed claims: what any producer could set."""
    assert "malformed" in rejected("0b6f7e9a-5c4e-4c43-9d3f-9c8a4b7d2e11", "{}")


def test_the_mac_is_hmac_sha256_under_a_key_of_its_own() -> None:
    original, body = "m-1", '{"user_id": "u"}'
    claim_key = hmac.digest(DATA_KEY, b"login-etl/v1/redrive-claim", "sha256")
    digest = hashlib.sha256(body.encode()).digest()
    expected = base64.urlsafe_b64encode(hmac.digest(claim_key, digest + b"m-1", "sha256"))
    assert KEY.sign(original, body) == (
        f"v1:{DeterministicMasker(DATA_KEY).key_id:08x}:{expected.decode().rstrip('=')}:m-1"
    )
    # A key of its own: not the data key's Fernet signing half, not the synthetic-IV key.
    assert claim_key not in (
        DATA_KEY[:16],
        hmac.digest(DATA_KEY, b"login-etl/v1/synthetic-iv", "sha256"),
    )


def test_ids_the_ledger_cannot_hold_are_not_signed() -> None:
    with pytest.raises(ValueError, match="1 to 128"):
        KEY.sign("x" * 129, "{}")
    with pytest.raises(ValueError, match="1 to 128"):
        KEY.sign("", "{}")


def test_repr_shows_no_key_material() -> None:
    assert repr(KEY) == f"ClaimKey(key_id={KEY.key_id:#010x})"
    assert DATA_KEY.hex() not in repr(VERIFY)
