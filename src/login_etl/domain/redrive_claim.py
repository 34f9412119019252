"""Who may say "this message is a copy of message X": the operator's redrive, and nobody else.

``login-etl dlq redrive`` sends each dead-lettered message back with the attribute
``login_etl_original_message_id``, and the ledger records the copy under X, so the copies of one
message (an interrupted redrive sends some twice) are written once. But anyone with
``sqs:SendMessage`` can set a message attribute: taken at its word, a producer could name another
message's id and have its own, different login skipped as a "duplicate". So the claim is
authenticated, and only a claim that verifies decides deduplication:

    v1:<key id, 8 hex digits>:<MAC, 43 base64url characters>:<original message id>
    MAC = HMAC-SHA256(k_claim, SHA-256(body) || original id)
    k_claim = HMAC-SHA256(data key, "login-etl/v1/redrive-claim")

``k_claim`` is derived from the Fernet data key for this purpose only (as ``masking`` derives its
synthetic-IV key), so only holders of the data key can sign: the function and operators with
``kms:Decrypt`` on it, who can unmask everything anyway. The body's hash binds a claim to its
body: lifted onto another message, it no longer verifies; replayed with the same body, it is the
same message, which is exactly what the ledger should treat as one. The SHA-256 digest has a
fixed length, so the MAC input is unambiguous without a separator.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable

from login_etl.domain.errors import InvalidMessageError, Reason
from login_etl.domain.masking import FERNET_KEY_BYTES, HmacSha256, data_key_id

# The message attribute `login-etl dlq redrive` sets on each copy it sends back.
CLAIM_ATTRIBUTE = "login_etl_original_message_id"
# The ledger's message_id is varchar(128): a longer id could never be recorded.
MAX_ORIGINAL_ID_CHARS = 128
_LABEL = b"login-etl/v1/redrive-claim"
_VERSION = "v1"
_CLAIM = re.compile(r"v1:([0-9a-f]{8}):([A-Za-z0-9_-]{43}):(.{1,128})", re.DOTALL | re.ASCII)

# (claim, body) -> the original message id, or ``InvalidMessageError``: what the pipeline uses.
VerifyClaim = Callable[[str, str], str]


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

    def sign(self, original_id: str, body: str) -> str:
        """The attribute value that claims ``body`` is (a copy of) message ``original_id``."""
        if not 1 <= len(original_id) <= MAX_ORIGINAL_ID_CHARS:
            raise ValueError(f"a message id has 1 to {MAX_ORIGINAL_ID_CHARS} characters")
        return f"{_VERSION}:{self.key_id:08x}:{self.mac(original_id, body)}:{original_id}"

    def mac(self, original_id: str, body: str) -> str:
        """The claim's MAC, base64url without padding (43 characters)."""
        # surrogatepass: the function must not crash on a body no real SQS message can carry.
        digest = hashlib.sha256(body.encode("utf-8", "surrogatepass")).digest()
        mac = self._hmac.digest(digest + original_id.encode("utf-8", "surrogatepass"))
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


class ClaimVerifier:
    """Checks claims against the keys it holds: the function's current key, or a whole ring."""

    __slots__ = ("_by_id",)

    def __init__(self, keys: Iterable[ClaimKey]) -> None:
        self._by_id = {key.key_id: key for key in keys}

    def __repr__(self) -> str:
        return f"ClaimVerifier(key_ids={[f'{k:#010x}' for k in sorted(self._by_id)]})"

    def __call__(self, claim: str, body: str) -> str:
        """The original message id the claim names, if it verifies; ``InvalidMessageError``."""
        parsed = _CLAIM.fullmatch(claim)
        if parsed is None:
            raise _invalid("the redrive claim attribute is malformed")
        key_id_hex, mac, original_id = parsed.groups()
        key = self._by_id.get(int(key_id_hex, 16))
        if key is None:
            raise _invalid(
                f"the redrive claim names data key {key_id_hex}, which is not held here"
                " (a rotation not picked up yet, or a forgery)"
            )
        # Compared as text: any other encoding of the right MAC is refused too.
        if not hmac.compare_digest(key.mac(original_id, body), mac):
            raise _invalid("the redrive claim does not authenticate (forged, or the body changed)")
        return original_id
