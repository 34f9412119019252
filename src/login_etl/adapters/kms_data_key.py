"""``DataKeySource`` on KMS: the data key is stored encrypted and decrypted once per container."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient


class DataKeyError(RuntimeError):
    """The data key could not be obtained; never carries key material."""


class KmsDataKeySource:
    """Decrypts the configured ciphertext with KMS (envelope encryption)."""

    def __init__(
        self, kms: KMSClient, ciphertext_b64: str, encryption_context: Mapping[str, str]
    ) -> None:
        try:
            self._ciphertext = base64.b64decode(ciphertext_b64, validate=True)
        except (binascii.Error, ValueError):
            raise DataKeyError("the data key ciphertext is not valid base64") from None
        self._kms = kms
        self._context = dict(encryption_context)

    def data_key(self) -> bytes:
        """Ask KMS for the plaintext key; the caller keeps it in memory only."""
        response = self._kms.decrypt(
            CiphertextBlob=self._ciphertext, EncryptionContext=self._context
        )
        plaintext = response["Plaintext"]
        if len(plaintext) != 32:
            raise DataKeyError("the KMS data key must be 32 bytes (KeySpec AES_256)")
        return plaintext
