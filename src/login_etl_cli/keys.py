"""The data keys in SSM: ``login-etl keys init | rotate | list`` and the keyring for unmasking.

Layout (envelope encryption; SSM only ever holds KMS ciphertexts):

* ``DATA_KEY_PARAMETER`` (``/login-etl/data-key``): the current key, the one the function reads;
* ``DATA_KEYRING_PATH/<key id>`` (``/login-etl/data-keys/2e32dcc6``): every key ever made, so
  that tokens of any age can be unmasked. Nothing is ever deleted from it.

``rotate`` writes the new key to the keyring first, then makes it current: a crash in between
leaves an unused key in the ring, never a current key that the ring lacks.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING

from login_etl.adapters.kms_data_key import KmsDataKeySource
from login_etl.config import KMS_ENCRYPTION_CONTEXT
from login_etl.domain.keyring import Keyring
from login_etl.domain.masking import DeterministicMasker

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_ssm import SSMClient

DEFAULT_KMS_KEY = "alias/login-etl"
# Where the current key is when DATA_KEY_PARAMETER is unset (the local stack provisions it here).
DATA_KEY_PARAMETER = "/login-etl/data-key"


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One wrapped data key of the ring."""

    key_id: int
    ciphertext_b64: str
    created: str
    current: bool


class KeyStore:
    """Creates, rotates and reads the wrapped data keys."""

    def __init__(
        self,
        ssm: SSMClient,
        kms: KMSClient,
        *,
        current_parameter: str,
        keyring_path: str,
        kms_key: str = DEFAULT_KMS_KEY,
    ) -> None:
        self._ssm = ssm
        self._kms = kms
        self._current_parameter = current_parameter
        self._keyring_path = keyring_path.rstrip("/")
        self._kms_key = kms_key

    def init(self) -> tuple[int, bool]:
        """Create the first key unless there is one; (current key id, whether it was created).

        A current key from before the keyring existed is adopted into the ring.
        """
        current = self._current_ciphertext()
        if current is None:
            return self._add_current_key(), True
        key_id = self._key_id(current)
        if key_id not in {k.key_id for k in self.list()}:
            self._put_in_ring(key_id, current)
        return key_id, False

    def rotate(self) -> tuple[int, int]:
        """A new key becomes current; (previous key id, new key id)."""
        previous, _ = self.init()
        return previous, self._add_current_key()

    def list(self) -> list[StoredKey]:
        """Every key of the ring, oldest first."""
        current = self._current_ciphertext()
        keys = []
        paginator = self._ssm.get_paginator("get_parameters_by_path")
        for page in paginator.paginate(Path=self._keyring_path, Recursive=False):
            for parameter in page["Parameters"]:
                value = parameter["Value"]
                keys.append(
                    StoredKey(
                        key_id=int(parameter["Name"].rsplit("/", 1)[1], 16),
                        ciphertext_b64=value,
                        created=parameter["LastModifiedDate"].isoformat(timespec="seconds"),
                        current=value == current,
                    )
                )
        return sorted(keys, key=lambda k: k.created)

    def keyring(self) -> Keyring:
        """Every key, decrypted with KMS (one call each): what unmasking and rekeying need."""
        keys, current = self._decrypted()
        return Keyring([DeterministicMasker(key) for key in keys], current)

    def _decrypted(self) -> tuple[tuple[bytes, ...], int]:
        """Every plaintext data key of the ring, and the current key's id."""
        stored = self.list()
        current = [k for k in stored if k.current]
        if not current:
            raise LookupError(
                f"no current data key in {self._keyring_path}: run `login-etl keys init`"
            )
        return tuple(self._decrypt(k.ciphertext_b64) for k in stored), current[0].key_id

    def _add_current_key(self) -> int:
        response = self._kms.generate_data_key(
            KeyId=self._kms_key, KeySpec="AES_256", EncryptionContext=KMS_ENCRYPTION_CONTEXT
        )
        key_id = DeterministicMasker(response["Plaintext"]).key_id
        ciphertext = base64.b64encode(response["CiphertextBlob"]).decode("ascii")
        self._put_in_ring(key_id, ciphertext)
        self._ssm.put_parameter(
            Name=self._current_parameter,
            Value=ciphertext,
            Type="String",  # ciphertext only: useless without kms:Decrypt on the key
            Overwrite=True,
            Description="login-etl: the current KMS-wrapped Fernet data key (base64)",
        )
        return key_id

    def _put_in_ring(self, key_id: int, ciphertext: str) -> None:
        self._ssm.put_parameter(
            Name=f"{self._keyring_path}/{key_id:08x}",
            Value=ciphertext,
            Type="String",
            Overwrite=False,  # a key of the ring is never replaced
            Description="login-etl: a KMS-wrapped Fernet data key (base64), kept for unmasking",
        )

    def _current_ciphertext(self) -> str | None:
        try:
            return self._ssm.get_parameter(Name=self._current_parameter)["Parameter"]["Value"]
        except self._ssm.exceptions.ParameterNotFound:
            return None

    def _key_id(self, ciphertext: str) -> int:
        return DeterministicMasker(self._decrypt(ciphertext)).key_id

    def _decrypt(self, ciphertext: str) -> bytes:
        return KmsDataKeySource(self._kms, ciphertext, KMS_ENCRYPTION_CONTEXT).data_key()
