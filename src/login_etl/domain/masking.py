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
from binascii import b2a_base64
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

if TYPE_CHECKING:  # imported by the first unmask: the function itself never unmasks
    from cryptography.fernet import Fernet

FERNET_KEY_BYTES = 32
_VERSION = b"\x80"
_BLOCK = 16
_IV_KEY_LABEL = b"login-etl/v1/synthetic-iv"
_KEY_ID_LABEL = b"login-etl/v1/key-id"
# version (1) + timestamp (8) + IV (16) + HMAC (32) around the padded ciphertext.
_OVERHEAD = 1 + 8 + _BLOCK + 32


def data_key_id(data_key: bytes) -> int:
    """The 32-bit id of a data key: a keyed fingerprint, so it reveals nothing of the key."""
    return int.from_bytes(hmac.digest(data_key, _KEY_ID_LABEL, "sha256")[:4])


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


_SHA256_BLOCK = 64
_PADDING = [bytes((n,)) * n for n in range(_BLOCK + 1)]  # PKCS #7: n bytes of value n
_URLSAFE = bytes.maketrans(b"+/", b"-_")  # what urlsafe_b64encode does after b2a_base64
_INNER_PAD = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) with the key's pads absorbed once, as ``hmac`` does internally.

    Copying two absorbed ``hashlib`` states is cheaper than copying an ``hmac.HMAC`` or calling
    ``hmac.digest`` (docs/instructions.md, "Masking"), and there are two HMACs per masked
    value. A property test holds it equal to ``hmac.digest``.
    """

    __slots__ = ("inner", "outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\0")
        # The absorbed states: copy them, never update them (DeterministicMasker inlines this).
        self.inner = hashlib.sha256(key.translate(_INNER_PAD))
        self.outer = hashlib.sha256(key.translate(_OUTER_PAD))

    def __repr__(self) -> str:
        return "HmacSha256(<key hidden>)"

    def digest(self, message: bytes) -> bytes:
        """The 32-byte HMAC of ``message``."""
        inner = self.inner.copy()
        inner.update(message)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class DeterministicMasker:
    """Masks strings under one 32-byte Fernet data key. Holds the key in memory only."""

    __slots__ = (
        "_aes",
        "_fernet",
        "_fernet_key",
        "_iv_inner",
        "_iv_outer",
        "_prefix",
        "_signing_inner",
        "_signing_outer",
        "key_id",
    )

    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != FERNET_KEY_BYTES:
            raise ValueError("the data key must be 32 bytes (a KMS AES_256 data key)")
        signing = HmacSha256(data_key[:16])
        self._signing_inner, self._signing_outer = signing.inner, signing.outer
        # One AES context for the container's life; CBC chaining is done in ``_cbc`` below.
        # A CBC Cipher built per value spent much of ``mask`` in cryptography's type checks
        # (docs/instructions.md, "Masking").
        self._aes = Cipher(algorithms.AES(data_key[16:]), modes.ECB()).encryptor()  # noqa: S305
        synthetic_iv = HmacSha256(hmac.digest(data_key, _IV_KEY_LABEL, "sha256"))
        self._iv_inner, self._iv_outer = synthetic_iv.inner, synthetic_iv.outer
        self.key_id: int = data_key_id(data_key)
        self._prefix = _VERSION + struct.pack(">Q", self.key_id)  # version | timestamp field
        self._fernet_key = base64.urlsafe_b64encode(data_key)
        self._fernet: Fernet | None = None  # made by the first unmask (operator tools only)

    def __repr__(self) -> str:  # never show key material, whatever gets logged
        return f"DeterministicMasker(key_id={self.key_id:#010x})"

    def mask(self, value: str) -> str:
        """Return the deterministic Fernet token of ``value``.

        Two masks are most of the Python work of a message, so everything is inline: the two
        HMACs (``HmacSha256.digest``), the one-block CBC, ``urlsafe_b64encode`` (two Python
        functions around ``b2a_base64``) cost a frame each (docs/instructions.md, "Masking").
        Property tests hold the result equal to the construction written with ``hmac`` and
        ``cryptography``'s CBC, and to tokens made by earlier releases.
        """
        plaintext = value.encode("utf-8")
        hashed = self._iv_inner.copy()
        hashed.update(plaintext)
        outer = self._iv_outer.copy()
        outer.update(hashed.digest())
        iv = outer.digest()[:_BLOCK]
        padded = plaintext + _PADDING[_BLOCK - len(plaintext) % _BLOCK]
        if len(padded) == _BLOCK:  # most values (IPv4, device ids) are one block
            block = (int.from_bytes(padded) ^ int.from_bytes(iv)).to_bytes(_BLOCK)
            signed = self._prefix + iv + self._aes.update(block)
        else:
            signed = self._prefix + iv + self._cbc(iv, padded)
        hashed = self._signing_inner.copy()
        hashed.update(signed)
        outer = self._signing_outer.copy()
        outer.update(hashed.digest())
        return b2a_base64(signed + outer.digest(), newline=False).translate(_URLSAFE).decode()

    def mask_many(self, values: Sequence[str]) -> list[str]:
        """The tokens of ``values``, in order: ``[self.mask(v) for v in values]``, for less.

        The HMACs stay one per value (``hashlib`` has no batch form), but the AES of every
        one-block value (IPv4 addresses, device ids) and the base64 of every token are done in
        one call each for the whole batch: per value, those calls cost more than the AES and
        base64 work itself (docs/instructions.md, "Masking"). A test holds the result equal to
        the reference construction on every class of value.
        """
        iv_inner, iv_outer = self._iv_inner, self._iv_outer
        plaintexts = [value.encode("utf-8") for value in values]
        ivs = []
        for plaintext in plaintexts:
            hashed = iv_inner.copy()
            hashed.update(plaintext)
            outer = iv_outer.copy()
            outer.update(hashed.digest())
            ivs.append(outer.digest()[:_BLOCK])
        # One-block values: every block XORed with its IV as one integer, then one AES call
        # (ECB over independent blocks is each value's one-block CBC). Longer ones chain.
        short = [len(plaintext) < _BLOCK for plaintext in plaintexts]
        padded = b"".join(
            [p + _PADDING[_BLOCK - len(p)] for p, one in zip(plaintexts, short, strict=True) if one]
        )
        chained = b"".join([iv for iv, one in zip(ivs, short, strict=True) if one])
        blocks = (int.from_bytes(padded) ^ int.from_bytes(chained)).to_bytes(len(padded))
        encrypted = self._aes.update(blocks)
        prefix = self._prefix
        signing_inner, signing_outer = self._signing_inner, self._signing_outer
        tokens = []
        offset = 0
        for plaintext, iv, one in zip(plaintexts, ivs, short, strict=True):
            if one:
                signed = prefix + iv + encrypted[offset : offset + _BLOCK]
                offset += _BLOCK
            else:
                padded_value = plaintext + _PADDING[_BLOCK - len(plaintext) % _BLOCK]
                signed = prefix + iv + self._cbc(iv, padded_value)
            hashed = signing_inner.copy()
            hashed.update(signed)
            outer = signing_outer.copy()
            outer.update(hashed.digest())
            tokens.append(signed + outer.digest())
        return _urlsafe_b64_each(tokens)

    def _cbc(self, iv: bytes, padded: bytes) -> bytes:
        """AES-CBC: each block XORed with the previous ciphertext block, then AES-encrypted."""
        previous = int.from_bytes(iv)
        out = []
        for start in range(0, len(padded), _BLOCK):
            block = int.from_bytes(padded[start : start + _BLOCK]) ^ previous
            encrypted = self._aes.update(block.to_bytes(_BLOCK))
            out.append(encrypted)
            previous = int.from_bytes(encrypted)
        return b"".join(out)

    def unmask(self, token: str) -> str:
        """Recover the value; raises ``cryptography.fernet.InvalidToken`` on any mismatch."""
        fernet = self._fernet
        if fernet is None:
            from cryptography.fernet import Fernet  # noqa: PLC0415 - see the module's imports

            fernet = self._fernet = Fernet(self._fernet_key)
        return fernet.decrypt(token).decode("utf-8")


TokensOf = Callable[[Iterable[str]], Mapping[str, str]]
"""The tokens of some values: a mapping holding at least each of them."""


class TokenMemo:
    """The tokens of a batch's values: each distinct value masked once, in one ``mask_many``.

    With ``max_entries`` (``MASK_CACHE_SIZE``), tokens are also remembered across batches, up
    to that many; when a batch would overflow it, only the tokens of that batch are kept
    (forgetting at once costs nothing per value, where an LRU cache paid its bookkeeping on
    every lookup). With 0, the default, nothing is kept: a memo of tokens no later batch asks
    for is paid for in CPU (its lookups and inserts miss the processor's caches), so it pays
    only where values come back across batches often enough (docs/benchmarks.md, "The mask
    cache").
    """

    __slots__ = ("_mask_many", "_max_entries", "_tokens")

    def __init__(self, mask_many: Callable[[list[str]], list[str]], max_entries: int) -> None:
        self._mask_many = mask_many
        self._max_entries = max_entries
        self._tokens: dict[str, str] = {}

    def __call__(self, values: Iterable[str]) -> Mapping[str, str]:
        """The tokens of ``values`` (and of others remembered); read it, never change it."""
        distinct = dict.fromkeys(values)
        if not self._max_entries:
            return dict(zip(distinct, self._mask_many(list(distinct)), strict=True))
        tokens = self._tokens
        new = [value for value in distinct if value not in tokens]
        if not new:
            return tokens
        if len(tokens) + len(new) > self._max_entries:
            tokens = {value: tokens[value] for value in distinct if value in tokens}
            self._tokens = tokens
        tokens.update(zip(new, self._mask_many(new), strict=True))
        return tokens


def _urlsafe_b64_each(raw_tokens: list[bytes]) -> list[str]:
    """``urlsafe_b64encode`` of each token, in one encoding of them all.

    Each token is padded with zero bytes to a multiple of 3, so that it starts a base64 group
    of its own; its characters are then cut out, and the ones its padding made are written as
    the ``=`` its own encoding ends with.
    """
    lengths = set(map(len, raw_tokens))
    if len(lengths) == 1:  # the usual batch: every token of one length, a fixed stride
        (size,) = lengths
        extra = -size % 3
        text = _b64(_ZEROS[extra].join(raw_tokens) + _ZEROS[extra])
        stride = 4 * (size + extra) // 3
        kept, equals = stride - extra, _EQUALS[extra]
        return [text[start : start + kept] + equals for start in range(0, len(text), stride)]
    chunks, spans = [], []
    for raw in raw_tokens:
        extra = -len(raw) % 3
        chunks.append(raw + _ZEROS[extra])
        spans.append((4 * (len(raw) + extra) // 3, extra))
    text = _b64(b"".join(chunks))
    tokens = []
    start = 0
    for length, extra in spans:
        end = start + length
        tokens.append(text[start : end - extra] + _EQUALS[extra])
        start = end
    return tokens


def _b64(raw: bytes) -> str:
    return b2a_base64(raw, newline=False).translate(_URLSAFE).decode("ascii")


_ZEROS = (b"", b"\0", b"\0\0")
_EQUALS = ("", "=", "==")


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
