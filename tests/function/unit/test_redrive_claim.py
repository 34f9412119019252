"""Redrive claims: only a holder of the data key can make one; bound to its body and times."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from login_etl.domain.errors import InvalidMessageError, Reason
from login_etl.domain.masking import DeterministicMasker
from login_etl.domain.redrive_claim import FRESH_FOR_MS, ClaimKey, ClaimVerifier, RedriveClaim

DATA_KEY = bytes(range(32))
KEY = ClaimKey(DATA_KEY)
VERIFY = ClaimVerifier([KEY])
OTHER = ClaimKey(bytes(range(1, 33)))

ids = st.text(min_size=1, max_size=128)
bodies = st.text(max_size=300)
times = st.integers(0, 10**15 - 1)
claims = st.builds(RedriveClaim, ids, times, times)


def rejected(claim: str, body: str, verify: ClaimVerifier = VERIFY) -> str:
    with pytest.raises(InvalidMessageError) as caught:
        verify(claim, body)
    assert caught.value.reason is Reason.INVALID_REDRIVE_CLAIM
    return caught.value.detail


@given(claims, bodies)
def test_a_signed_claim_verifies_to_what_it_says(claim: RedriveClaim, body: str) -> None:
    assert VERIFY(KEY.sign(body, claim), body) == claim
    assert ClaimVerifier([OTHER, KEY])(KEY.sign(body, claim), body) == claim


@given(claims, bodies, bodies)
def test_a_claim_lifted_onto_another_body_is_rejected(
    claim: RedriveClaim, body: str, other: str
) -> None:
    assume(body != other)
    assert "does not authenticate" in rejected(KEY.sign(body, claim), other)


@given(claims, ids, bodies)
def test_a_claim_with_another_id_is_rejected(claim: RedriveClaim, forged: str, body: str) -> None:
    assume(claim.original_id != forged)
    prefix = KEY.sign(body, claim).removesuffix(claim.original_id)
    assert "does not authenticate" in rejected(prefix + forged, body)


@given(claims, times, times, bodies)
def test_a_claim_with_other_times_is_rejected(
    claim: RedriveClaim, sent: int, signed: int, body: str
) -> None:
    """Moving the login's date or the signing time (to dodge the replay window) breaks the MAC."""
    assume((sent, signed) != (claim.original_sent_ms, claim.signed_at_ms))
    version, key_id, mac, _ = KEY.sign(body, claim).split(":", 3)
    forged = ":".join([version, key_id, mac, str(sent), str(signed), claim.original_id])
    assert "does not authenticate" in rejected(forged, body)


@given(claims, bodies)
def test_a_claim_of_another_key_is_rejected(claim_said: RedriveClaim, body: str) -> None:
    claim = OTHER.sign(body, claim_said)
    assert "not held here" in rejected(claim, body)
    # Naming our key id does not help: the MAC is still the other key's.
    relabelled = claim.replace(f"{OTHER.key_id:08x}", f"{KEY.key_id:08x}", 1)
    assert "does not authenticate" in rejected(relabelled, body)
    # A verifier that holds no key (a function with nothing loaded) accepts nothing.
    rejected(KEY.sign(body, claim_said), body, ClaimVerifier([]))


@given(claims, bodies, st.data())
def test_any_changed_character_is_rejected(
    claim_said: RedriveClaim, body: str, data: st.DataObject
) -> None:
    claim = KEY.sign(body, claim_said)
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


def test_a_v1_claim_is_no_longer_accepted() -> None:
    """v1 bound no time: a copy could be replayed onto a later login for ever."""
    v1 = "v1:0a1b2c3d:" + "A" * 43 + ":m-1"
    assert "malformed" in rejected(v1, "{}")


def test_the_mac_is_hmac_sha256_under_a_key_of_its_own() -> None:
    body = '{"user_id": "u"}'
    said = RedriveClaim("m-1", 1_700_000_000_000, 1_700_000_600_000)
    claim_key = hmac.digest(DATA_KEY, b"login-etl/v2/redrive-claim", "sha256")
    digest = hashlib.sha256(body.encode()).digest()
    times = struct.pack(">QQ", 1_700_000_000_000, 1_700_000_600_000)
    expected = base64.urlsafe_b64encode(hmac.digest(claim_key, digest + times + b"m-1", "sha256"))
    assert KEY.sign(body, said) == (
        f"v2:{DeterministicMasker(DATA_KEY).key_id:08x}:{expected.decode().rstrip('=')}"
        ":1700000000000:1700000600000:m-1"
    )
    # A key of its own: not the data key's Fernet signing half, not the synthetic-IV key.
    assert claim_key not in (
        DATA_KEY[:16],
        hmac.digest(DATA_KEY, b"login-etl/v1/synthetic-iv", "sha256"),
    )


def test_ids_the_ledger_cannot_hold_are_not_signed() -> None:
    with pytest.raises(ValueError, match="1 to 128"):
        KEY.sign("{}", RedriveClaim("x" * 129, 0, 0))
    with pytest.raises(ValueError, match="1 to 128"):
        KEY.sign("{}", RedriveClaim("", 0, 0))
    with pytest.raises(ValueError, match="15 digits"):
        KEY.sign("{}", RedriveClaim("m", 10**15, 0))


@given(times, st.integers(-(10**9), 10**9))
def test_a_claim_is_fresh_only_for_a_copy_sent_when_it_was_signed(
    signed_at: int, offset: int
) -> None:
    claim = RedriveClaim("m", 0, signed_at)
    sent = signed_at + offset
    # A SentTimestamp has at most 15 digits (the year 33658): one of 16 is not a time.
    possible = 0 <= sent < 10**15
    assert claim.is_fresh_for(str(sent)) == (possible and abs(offset) <= FRESH_FOR_MS)


@given(st.one_of(st.none(), st.text(max_size=30)))
def test_freshness_of_odd_timestamps_is_false_never_a_crash(sent: str | None) -> None:
    fresh = RedriveClaim("m", 0, 0).is_fresh_for(sent)
    assert fresh == (
        sent is not None
        and sent.isdecimal()
        and sent.isascii()
        and len(sent) <= 15
        and int(sent) <= FRESH_FOR_MS
    )


def test_repr_shows_no_key_material() -> None:
    assert repr(KEY) == f"ClaimKey(key_id={KEY.key_id:#010x})"
    assert DATA_KEY.hex() not in repr(VERIFY)
