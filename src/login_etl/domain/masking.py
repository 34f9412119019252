"""Deterministic Fernet masking: equal inputs give equal tokens, any token decrypts with Fernet.

Plain ``Fernet.encrypt`` draws a random IV and stamps the current time, so the same device id
masks differently every time and analysts cannot spot duplicates. Here the token is built in
the standard Fernet layout (version | timestamp | IV | AES-128-CBC ciphertext | HMAC-SHA256)
with two fixed choices, so ``cryptography.fernet.Fernet(key).decrypt(token)`` still recovers
the value:

* the IV is synthetic, ``HMAC-SHA256(iv_key, plaintext)[:16]`` (the SIV construction), with
  ``iv_key`` derived from the data key for this use only. Equal plaintexts share an IV, hence a
  token; different plaintexts get unrelated IVs, so CBC leaks nothing beyond equality;
* the timestamp field carries a 32-bit key id (a keyed fingerprint of the data key) instead of
  the time, so a token says which key made it. Fernet ignores it unless a ``ttl`` is asked for.

Decryption is a function, so distinct inputs can never share a token (injective), and the HMAC
authenticates the whole token, so tampering is detected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

FERNET_KEY_BYTES = 32
_VERSION = b"\x80"
_BLOCK = 16
_IV_KEY_LABEL = b"login-etl/v1/synthetic-iv"
_KEY_ID_LABEL = b"login-etl/v1/key-id"
# version (1) + timestamp (8) + IV (16) + HMAC (32) around the padded ciphertext.
_OVERHEAD = 1 + 8 + _BLOCK + 32


def token_length(plaintext_bytes: int) -> int:
    """Length in characters of the token for a plaintext of this many bytes."""
    padded = (plaintext_bytes // _BLOCK + 1) * _BLOCK
    return 4 * -(-(_OVERHEAD + padded) // 3)


def max_plaintext_bytes(token_chars: int) -> int:
    """Longest plaintext (in UTF-8 bytes) whose token fits in ``token_chars`` characters."""
    longest = -1
    while token_length(longest + 1) <= token_chars:
        longest += 1
    return longest


class DeterministicMasker:
    """Masks strings under one 32-byte Fernet data key. Holds the key in memory only."""

    __slots__ = ("_encryption_key", "_fernet", "_iv_key", "_signing_key", "_timestamp", "key_id")

    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != FERNET_KEY_BYTES:
            raise ValueError("the data key must be 32 bytes (a KMS AES_256 data key)")
        self._signing_key = data_key[:16]
        self._encryption_key = data_key[16:]
        self._iv_key = hmac.digest(data_key, _IV_KEY_LABEL, "sha256")
        self.key_id: int = int.from_bytes(hmac.digest(data_key, _KEY_ID_LABEL, "sha256")[:4])
        self._timestamp = struct.pack(">Q", self.key_id)
        self._fernet = Fernet(base64.urlsafe_b64encode(data_key))

    def __repr__(self) -> str:  # never show key material, whatever gets logged
        return f"DeterministicMasker(key_id={self.key_id:#010x})"

    def mask(self, value: str) -> str:
        """Return the deterministic Fernet token of ``value``."""
        plaintext = value.encode("utf-8")
        iv = hmac.digest(self._iv_key, plaintext, "sha256")[:_BLOCK]
        pad = _BLOCK - len(plaintext) % _BLOCK
        encryptor = Cipher(algorithms.AES(self._encryption_key), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(plaintext + bytes((pad,)) * pad) + encryptor.finalize()
        signed = b"".join((_VERSION, self._timestamp, iv, ciphertext))
        mac = hmac.digest(self._signing_key, signed, hashlib.sha256)
        return base64.urlsafe_b64encode(signed + mac).decode("ascii")

    def unmask(self, token: str) -> str:
        """Recover the value; raises ``cryptography.fernet.InvalidToken`` on any mismatch."""
        return self._fernet.decrypt(token).decode("utf-8")


def token_key_id(token: str) -> int:
    """The key id a token carries (its Fernet timestamp field); no key needed."""
    raw = base64.urlsafe_b64decode(token)
    if len(raw) < _OVERHEAD or raw[:1] != _VERSION:
        raise ValueError("not a Fernet token")
    key_id: int = struct.unpack(">Q", raw[1:9])[0]
    return key_id


def token_prefix(key_id: int) -> str:
    """The first 12 characters of every token made by this key (version and key id).

    9 bytes encode to exactly 12 base64 characters, so SQL can find the rows of a key with
    ``left(masked_ip, 12)`` without decoding anything (``login-etl rekey``).
    """
    return base64.urlsafe_b64encode(_VERSION + struct.pack(">Q", key_id)).decode("ascii")
