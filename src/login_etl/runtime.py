"""What a warm container keeps between invocations: settings, the masker (one KMS call), the store.

Built lazily on the first invocation, not at import, so that a failure (KMS down, secret
unreadable) fails that invocation, which the event source mapping retries, and the next
invocation tries again instead of the container being stuck.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from login_etl.adapters import aws
from login_etl.adapters.config_stores import read_json_secret, read_parameter
from login_etl.adapters.kms_data_key import KmsDataKeySource
from login_etl.adapters.postgres_store import ConnectionParams, PostgresLoginStore
from login_etl.adapters.sqs_queue import SqsQueue
from login_etl.config import (
    KMS_ENCRYPTION_CONTEXT,
    ConfigurationError,
    Settings,
    connection_params_from_secret,
    connection_params_from_url,
)
from login_etl.domain.masking import DeterministicMasker


@dataclass(frozen=True, slots=True)
class Runtime:
    """The per-container dependencies of the pipeline."""

    settings: Settings
    masker: DeterministicMasker
    mask: Callable[[str], str]  # masker.mask behind a bounded cache: repeated devices are free
    store: PostgresLoginStore

    def queue(self) -> SqsQueue:
        """The queue the scheduled drain reads; only that trigger needs ``QUEUE_URL``."""
        if not self.settings.queue_url:
            raise ConfigurationError("set QUEUE_URL: the scheduled trigger drains that queue")
        return SqsQueue(aws.sqs(), self.settings.queue_url, wait_time_s=self.settings.drain_wait_s)


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The container's runtime, built on first use."""
    global _runtime  # noqa: PLW0603 - one per container is the point
    if _runtime is None:
        _runtime = build_runtime(Settings.from_env())
    return _runtime


def reset_runtime() -> None:
    """Forget the container state (tests, and after the configuration changes)."""
    global _runtime  # noqa: PLW0603
    if _runtime is not None:
        _runtime.store.close()
    _runtime = None


def build_runtime(settings: Settings) -> Runtime:
    """Decrypt the data key with KMS and prepare the store (it connects on first write)."""
    ciphertext = settings.data_key_ciphertext or read_parameter(
        aws.ssm(), str(settings.data_key_parameter)
    )
    key = KmsDataKeySource(aws.kms(), ciphertext, KMS_ENCRYPTION_CONTEXT).data_key()
    masker = DeterministicMasker(key)
    mask = lru_cache(maxsize=settings.mask_cache_size)(masker.mask)
    return Runtime(settings, masker, mask, PostgresLoginStore(connection_params(settings)))


def connection_params(settings: Settings) -> ConnectionParams:
    """From DATABASE_URL if set, else from the Secrets Manager secret."""
    if settings.database_url:
        return connection_params_from_url(settings.database_url, settings)
    secret = read_json_secret(aws.secretsmanager(), str(settings.database_secret_arn))
    return connection_params_from_secret(secret, settings)
