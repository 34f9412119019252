"""Several data keys at once: the current one masks, every one of them unmasks.

Rotation adds a key and makes it current; tokens made before keep their key id (the Fernet
timestamp field, see ``masking``), so each token names the key that recovers it. Used by the
operator tools (``login-etl unmask``, ``login-etl rekey``); the function itself only ever holds
the current key.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable
from enum import StrEnum

from cryptography.fernet import InvalidToken

from login_etl.domain.masking import DeterministicMasker, token_key_id


class UnmaskFailure(StrEnum):
    """Why a value could not be recovered; says nothing about the value itself."""

    NOT_A_TOKEN = "not a Fernet token"  # noqa: S105 - a message, not a password
    UNKNOWN_KEY = "made with a key that is not in the keyring"
    NOT_AUTHENTIC = "does not authenticate (tampered, or not made by the key it names)"


class UnmaskError(ValueError):
    """One value could not be unmasked; the others can still be."""

    def __init__(self, failure: UnmaskFailure, key_id: int | None = None) -> None:
        named = f" (key id {key_id:08x})" if key_id is not None else ""
        super().__init__(f"{failure.value}{named}")
        self.failure = failure
        self.key_id = key_id


class Keyring:
    """Data keys by key id, one of them current."""

    def __init__(self, maskers: Iterable[DeterministicMasker], current_key_id: int) -> None:
        self._by_id = {masker.key_id: masker for masker in maskers}
        if current_key_id not in self._by_id:
            raise ValueError(f"the current key {current_key_id:08x} is not in the keyring")
        self.current = self._by_id[current_key_id]

    def __repr__(self) -> str:
        ids = ", ".join(f"{key_id:08x}" for key_id in sorted(self._by_id))
        return f"Keyring(current={self.current.key_id:08x}, keys=[{ids}])"

    @property
    def key_ids(self) -> list[int]:
        """Every key id, sorted."""
        return sorted(self._by_id)

    def unmask(self, token: str) -> str:
        """The value behind a token made by any key of the ring; ``UnmaskError`` if none."""
        try:
            key_id = token_key_id(token)
        except (ValueError, binascii.Error):
            raise UnmaskError(UnmaskFailure.NOT_A_TOKEN) from None
        masker = self._by_id.get(key_id)
        if masker is None:
            raise UnmaskError(UnmaskFailure.UNKNOWN_KEY, key_id)
        try:
            return masker.unmask(token)
        except (InvalidToken, UnicodeDecodeError):
            raise UnmaskError(UnmaskFailure.NOT_AUTHENTIC, key_id) from None

    def remask(self, token: str) -> str:
        """The same value's token under the current key (for ``rekey``); checks it first."""
        value = self.unmask(token)
        if token_key_id(token) == self.current.key_id:
            return token
        return self.current.mask(value)
