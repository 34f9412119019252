"""Who may say "this message is a copy of message X": the operator's redrive, and nobody else.

``login-etl dlq redrive`` sends each dead-lettered message back with the attribute
``login_etl_original_message_id``, and the ledger records the copy under X, so the copies of one
message (an interrupted redrive sends some twice) are written once. But anyone with
``sqs:SendMessage`` can set a message attribute: taken at its word, a producer could name another
message's id and have its own, different login skipped as a "duplicate". So the claim is
authenticated, and only a claim that verifies decides deduplication:

    v2:<key id, 8 hex>:<MAC, 43 base64url>:<original SentTimestamp>:<signed at>:<original id>
    MAC = HMAC-SHA256(k_claim, SHA-256(body) || original SentTimestamp || signed at || original id)
    k_claim = HMAC-SHA256(data key, "login-etl/v2/redrive-claim")

(both times in Unix milliseconds, as 8 big-endian bytes in the MAC input.)

``k_claim`` is derived from the Fernet data key for this purpose only (as ``masking`` derives its
synthetic-IV key), so only holders of the data key can sign: the function and operators with
``kms:Decrypt`` on it, who can unmask everything anyway. The body's hash binds a claim to its
body: lifted onto another message, it no longer verifies. The SHA-256 digest and the times have
fixed lengths, so the MAC input is unambiguous without a separator.

The two times close what v1 left open (found in review):

* **the original SentTimestamp** is the login's: a redriven copy gets a new one from SQS, and
  its ``create_date`` would have been the day of the redrive. The row is dated by the claim's.
* **signed at** bounds a replay. The redrive signs each copy just before sending it, so the
  copy's own SentTimestamp is within ``FRESH_FOR_MS`` of it: SQS refuses requests signed by a
  client clock more than 15 minutes off (SigV4's ``RequestTimeTooSkewed``), and 5 more minutes
  cover the batch. Whoever reads a copy off the queue (``sqs:ReceiveMessage``, no key) and
  attaches its claim to a later login with the same body sends a message whose SentTimestamp is
  outside the window: the claim is ignored and the login counts as itself, a row of its own. A
  replay inside the 20 minutes is still taken for the copy it names (docs/guarantees.md, "Not
  guaranteed").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from login_etl.domain.errors import InvalidMessageError, Reason
from login_etl.domain.masking import FERNET_KEY_BYTES, HmacSha256, data_key_id

# The message attribute `login-etl dlq redrive` sets on each copy it sends back.
CLAIM_ATTRIBUTE = "login_etl_original_message_id"
# The ledger's message_id is varchar(128): a longer id could never be recorded.
MAX_ORIGINAL_ID_CHARS = 128
# How far a copy's SentTimestamp may be from its claim's signing time (see the docstring).
FRESH_FOR_MS = 20 * 60 * 1000
_MAX_DIGITS = 15  # the year 33658: keeps both times in 8 bytes and in the regex
_MAX_MS = 10**_MAX_DIGITS - 1
_LABEL = b"login-etl/v2/redrive-claim"
_VERSION = "v2"
_CLAIM = re.compile(
    r"v2:([0-9a-f]{8}):([A-Za-z0-9_-]{43}):([0-9]{1,15}):([0-9]{1,15}):(.{1,128})",
    re.DOTALL | re.ASCII,
)


@dataclass(frozen=True, slots=True)
class RedriveClaim:
    """What a verified claim says: this message is a copy of ``original_id``."""

    original_id: str
    original_sent_ms: int  # the login's SentTimestamp: the row's create_date
    signed_at_ms: int  # when the redrive signed it, just before sending the copy

    def is_fresh_for(self, sent_timestamp_ms: str | None) -> bool:
        """The copy carrying it was sent when the claim was signed (not a later replay)."""
        sent = sent_time_ms(sent_timestamp_ms)
        return sent is not None and abs(sent - self.signed_at_ms) <= FRESH_FOR_MS


def sent_time_ms(sent_timestamp_ms: str | None) -> int | None:
    """A SentTimestamp as Unix milliseconds; None if it is not one a claim can carry."""
    text = sent_timestamp_ms
    if text is None or not text.isdecimal() or not text.isascii() or len(text) > _MAX_DIGITS:
        return None
    return int(text)


# (claim, body) -> what the claim says, or ``InvalidMessageError``: what the pipeline uses.
VerifyClaim = Callable[[str, str], RedriveClaim]


def _invalid(detail: str) -> InvalidMessageError:
    return InvalidMessageError(Reason.INVALID_REDRIVE_CLAIM, detail)


class ClaimKey:
    """The claim MAC key of one data key: signs claims (redrive) and checks them."""

    __slots__ = ("_hmac", "key_id")

    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != FERNET_KEY_BYTES:
            raise ValueError("the data key must be 32 bytes (a KMS AES_256 data key)")
        self._hmac = HmacSha256(hmac.digest(data_key, _LABEL, "sha256"))
        self.key_id: int = data_key_id(data_key)

    def __repr__(self) -> str:  # never show key material
        return f"ClaimKey(key_id={self.key_id:#010x})"

    def sign(self, body: str, claim: RedriveClaim) -> str:
        """The attribute value that says ``body`` is (a copy of) ``claim.original_id``."""
        original_id = claim.original_id
        if not 1 <= len(original_id) <= MAX_ORIGINAL_ID_CHARS:
            raise ValueError(f"a message id has 1 to {MAX_ORIGINAL_ID_CHARS} characters")
        if not (0 <= claim.original_sent_ms <= _MAX_MS and 0 <= claim.signed_at_ms <= _MAX_MS):
            raise ValueError("a claim's times are Unix milliseconds of at most 15 digits")
        return (
            f"{_VERSION}:{self.key_id:08x}:{self.mac(body, claim)}:"
            f"{claim.original_sent_ms}:{claim.signed_at_ms}:{original_id}"
        )

    def mac(self, body: str, claim: RedriveClaim) -> str:
        """The claim's MAC, base64url without padding (43 characters)."""
        # surrogatepass: the function must not crash on a body no real SQS message can carry.
        digest = hashlib.sha256(body.encode("utf-8", "surrogatepass")).digest()
        times = struct.pack(">QQ", claim.original_sent_ms, claim.signed_at_ms)
        mac = self._hmac.digest(digest + times + claim.original_id.encode("utf-8", "surrogatepass"))
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


class ClaimVerifier:
    """Checks claims against the keys it holds: the function's current key, or a whole ring."""

    __slots__ = ("_by_id",)

    def __init__(self, keys: Iterable[ClaimKey]) -> None:
        self._by_id = {key.key_id: key for key in keys}

    def __repr__(self) -> str:
        return f"ClaimVerifier(key_ids={[f'{k:#010x}' for k in sorted(self._by_id)]})"

    def __call__(self, claim: str, body: str) -> RedriveClaim:
        """What the claim says, if it verifies; ``InvalidMessageError`` otherwise."""
        parsed = _CLAIM.fullmatch(claim)
        if parsed is None:
            raise _invalid("the redrive claim attribute is malformed")
        key_id_hex, mac, original_sent, signed_at, original_id = parsed.groups()
        key = self._by_id.get(int(key_id_hex, 16))
        if key is None:
            raise _invalid(
                f"the redrive claim names data key {key_id_hex}, which is not held here"
                " (a rotation not picked up yet, or a forgery)"
            )
        said = RedriveClaim(original_id, int(original_sent), int(signed_at))
        # Compared as text: any other encoding of the right MAC is refused too.
        if not hmac.compare_digest(key.mac(body, said), mac):
            raise _invalid("the redrive claim does not authenticate (forged, or the body changed)")
        return said
