"""The small interfaces the pipeline depends on; adapters/ implements them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from login_etl.domain.models import QueueMessage, UserLoginRow


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one ``LoginStore.write`` did.

    Either it committed (``rejected`` empty): ``written`` new rows, ``duplicates`` messages
    already in the ledger. Or Postgres refused some rows: nothing was committed and
    ``rejected`` maps their message ids to a SQLSTATE, so the caller can retry without them.
    """

    written: int = 0
    duplicates: int = 0
    rejected: dict[str, str] = field(default_factory=dict)


class LoginStore(Protocol):
    """Where rows go: exactly once per message id, all of a call in one transaction."""

    def write(self, rows: Sequence[tuple[str, UserLoginRow]]) -> WriteResult:
        """Write (message id, row) pairs; message ids are unique within one call."""
        ...


@runtime_checkable
class StreamingLoginStore(LoginStore, Protocol):
    """A store that writes while the rows are still being made: its waits overlap our work."""

    def write_streamed(self, keys: Sequence[str], rows: Iterable[UserLoginRow]) -> WriteResult:
        """``write(list(zip(keys, rows)))``, with the ids known first and the rows made lazily.

        ``rows`` yields one row per id, in order; the store takes each as soon as it is made.
        """
        ...


class MaskOffload(Protocol):
    """Masks values somewhere else while the caller works: a batch's masking on two CPUs."""

    def submit(self, values: list[str]) -> Callable[[], list[str]]:
        """Start masking ``values``; the returned call waits and gives one token per value,
        in order, as the mask function would have (it never gives anything else)."""
        ...


class LedgerPruner(Protocol):
    """Forgets ledger entries older than the window in which a message can come back."""

    def prune(self, retention_s: float, batch_rows: int, keep_going: Callable[[], bool]) -> int:
        """Delete entries older than ``retention_s`` a batch at a time while ``keep_going()``
        says so and old entries remain; the number deleted."""
        ...


class DataKeySource(Protocol):
    """Where the plaintext Fernet data key comes from (KMS, in production)."""

    def data_key(self) -> bytes:
        """Return the 32-byte plaintext data key. Raises if the key service is unavailable."""
        ...


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A message taken off the queue by the drain, with the handle that deletes it."""

    message: QueueMessage
    receipt_handle: str


@dataclass(frozen=True, slots=True)
class DeleteFailure:
    """A message SQS did not delete: it will come back, and the ledger makes that harmless."""

    message_id: str
    code: str


class MessageQueue(Protocol):
    """The queue the scheduled drain reads (SQS, in production)."""

    def receive(self) -> list[ReceivedMessage]:
        """Up to 10 messages, waiting (long polling) a little if none is visible."""
        ...

    def delete(self, messages: Sequence[ReceivedMessage]) -> list[DeleteFailure]:
        """Delete the messages; return those the queue did not delete, and why."""
        ...

    def release(self, messages: Sequence[ReceivedMessage]) -> None:
        """Make messages visible again at once (received, but never processed)."""
        ...
