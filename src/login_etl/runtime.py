"""What a warm container keeps between invocations: settings, the current key, the store.

Built lazily on the first invocation, not at import, so that a failure (KMS down, secret
unreadable) fails that invocation, which the event source mapping retries, and the next
invocation tries again instead of the container being stuck.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from login_etl.adapters import aws
from login_etl.adapters.config_stores import CachedParameter, read_json_secret
from login_etl.adapters.kms_data_key import DataKeyError, KmsDataKeySource
from login_etl.adapters.postgres.connection import ConnectionParams
from login_etl.adapters.postgres.credentials import (
    ConnectionParamsSource,
    FixedParams,
    IamTokenParams,
    RereadParams,
)
from login_etl.adapters.postgres.store import PostgresLoginStore
from login_etl.config import (
    KMS_ENCRYPTION_CONTEXT,
    ConfigurationError,
    Settings,
    connection_params_from_secret,
    connection_params_from_url,
)
from login_etl.domain.masking import DeterministicMasker, TokenMemo, TokensOf
from login_etl.observability import report_key_refresh_failure

# Imported where used: the first SQS invocation needs neither the drain's queue nor the
# prune's window, and the cold start does not pay for them (docs/benchmarks.md, "Cold start").
if TYPE_CHECKING:
    from login_etl.adapters.sqs_queue import SqsQueue
    from login_etl.ledger_pruning import LedgerWindow

# What a refresh can fail with: SSM and KMS (an API error, or no answer at all), a ciphertext
# that is not one. A bug of ours is none of these: it propagates.
REFRESH_ERRORS = (ClientError, BotoCoreError, DataKeyError)


class LoadedKey(NamedTuple):
    """What the pipeline gets from one data key: its id and its tokens (remembered)."""

    key_id: int
    tokens_of: TokensOf


class CurrentKey:
    """The data key the function masks with, following ``login-etl keys rotate``.

    The wrapped key is re-read from SSM at most every ``DATA_KEY_MAX_AGE_SECONDS``
    (``CachedParameter``), so a rotation reaches warm containers within that time; KMS is called
    only when the ciphertext changed. Tokens belong to their key (``TokenMemo``: each distinct
    value of a batch masked once, and across batches too where ``MASK_CACHE_SIZE`` asks).

    A refresh that fails (SSM or KMS down, a new ciphertext KMS refuses) keeps the key already
    held: it is still a valid key, and a rotation only needs to reach the container eventually.
    The failure is logged and counted (``DataKeyRefreshFailed``), and the next attempt waits
    another ``DATA_KEY_MAX_AGE_SECONDS``, so an outage does not add SSM's and KMS's timeouts and
    retries to every invocation. Only a container that never loaded a key fails.

    ``read_ciphertext`` and ``decrypt`` default to SSM (or ``DATA_KEY_CIPHERTEXT``) and KMS.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        read_ciphertext: Callable[[], str] | None = None,
        decrypt: Callable[[str], bytes] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._read = read_ciphertext or self._read_ciphertext
        self._decrypt = decrypt or _kms_decrypt
        self._clock = clock
        # Made on first read: not needed with DATA_KEY_CIPHERTEXT, and a first SSM client
        # is a noticeable part of the cold start (docs/benchmarks.md, "Cold start").
        self._provider: CachedParameter | None = None
        self._loaded: tuple[str, LoadedKey] | None = None
        self._hold_until = 0.0  # after a failed refresh: no new attempt before then

    def current(self) -> LoadedKey:
        """The current key's functions; decrypts a new key with KMS if it changed."""
        loaded = self._loaded
        if loaded is not None and self._clock() < self._hold_until:
            return loaded[1]
        try:
            ciphertext = self._read()
            if loaded is None or loaded[0] != ciphertext:
                loaded = self._loaded = (ciphertext, self._load(ciphertext))
        except REFRESH_ERRORS as error:
            if loaded is None:
                raise  # no key to fall back on: the invocation fails and is retried
            self._hold_until = self._clock() + self._settings.data_key_max_age_s
            report_key_refresh_failure(loaded[1].key_id, _failure_code(error))
        return loaded[1]

    def tokens_of(self) -> TokensOf:
        """The tokens of the current key (``TokenMemo``)."""
        return self.current().tokens_of

    def _load(self, ciphertext: str) -> LoadedKey:
        masker = DeterministicMasker(self._decrypt(ciphertext))
        memo = TokenMemo(masker.mask_many, self._settings.mask_cache_size)
        return LoadedKey(masker.key_id, memo)

    def _read_ciphertext(self) -> str:
        settings = self._settings
        if settings.data_key_ciphertext:
            return settings.data_key_ciphertext
        if self._provider is None:
            self._provider = CachedParameter(
                aws.ssm(),
                str(settings.data_key_parameter),
                settings.data_key_max_age_s,
                self._clock,
            )
        return self._provider.get()


def _kms_decrypt(ciphertext: str) -> bytes:
    return KmsDataKeySource(aws.kms(), ciphertext, KMS_ENCRYPTION_CONTEXT).data_key()


def _failure_code(error: BaseException) -> str:
    """What went wrong, safe to log: an AWS error code or an exception class, never a message."""
    inner = error.__cause__ or error.__context__
    for candidate in (error, inner):
        if isinstance(candidate, ClientError):
            return str(candidate.response.get("Error", {}).get("Code", "ClientError"))
    return type(error).__name__


@dataclass(frozen=True, slots=True)
class Runtime:
    """The per-container dependencies of the pipeline."""

    settings: Settings
    key: CurrentKey
    store: PostgresLoginStore

    def queue(self) -> SqsQueue:
        """The queue the scheduled drain reads; only that trigger needs ``QUEUE_URL``."""
        from login_etl.adapters.sqs_queue import SqsQueue  # noqa: PLC0415 - the drain's only

        if not self.settings.queue_url:
            raise ConfigurationError("set QUEUE_URL: the scheduled trigger drains that queue")
        return SqsQueue(aws.sqs(), self.settings.queue_url, wait_time_s=self.settings.drain_wait_s)

    def ledger_window(self) -> LedgerWindow:
        """The ledger's window from the settings and, where they can be read, the queues."""
        from login_etl.adapters.sqs_queue import queue_retention  # noqa: PLC0415 - the prune's
        from login_etl.ledger_pruning import ledger_window  # noqa: PLC0415 - only

        settings = self.settings
        observed = None
        if settings.queue_url:
            with contextlib.suppress(ClientError, BotoCoreError, KeyError, ValueError):
                observed = queue_retention(aws.sqs(), settings.queue_url)
        return ledger_window(
            settings.queue_retention_s,
            settings.dlq_retention_s,
            settings.ledger_retention_margin_s,
            observed,
        )


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
    """Load the data key now (KMS down fails fast) and prepare the store (it connects later)."""
    key = CurrentKey(settings)
    key.tokens_of()
    return Runtime(settings, key, PostgresLoginStore(connection_params_source(settings)))


def connection_params_source(settings: Settings) -> ConnectionParamsSource:
    """From DATABASE_URL if set (fixed), else from the Secrets Manager secret (rotating);
    with ``DB_AUTH=iam``, a fresh IAM token as the password at every connect."""
    source: ConnectionParamsSource
    if settings.database_url:
        source = FixedParams(connection_params_from_url(settings.database_url, settings))
    else:
        arn = str(settings.database_secret_arn)
        source = RereadParams(
            lambda: connection_params_from_secret(
                read_json_secret(aws.secretsmanager(), arn), settings
            )
        )
    if settings.db_auth == "iam":
        return IamTokenParams(source, aws.rds())
    return source


def connection_params(settings: Settings) -> ConnectionParams:
    """The parameters to use now (operator tools, tests)."""
    return connection_params_source(settings).params()
