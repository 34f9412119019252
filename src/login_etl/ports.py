"""The small interfaces the pipeline depends on; adapters/ implements them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from login_etl.deadline import Deadline
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

    def write(
        self, rows: Sequence[tuple[str, UserLoginRow]], deadline: Deadline | None = None
    ) -> WriteResult:
        """Write (message id, row) pairs; message ids are unique within one call.

        Raises ``DeadlineExceededError`` (nothing written) rather than run past ``deadline``.
        """
        ...


class LedgerPruner(Protocol):
    """Forgets ledger entries older than the window in which a message can come back."""

    def prune(
        self,
        retention_s: float,
        batch_rows: int,
        keep_going: Callable[[], bool],
        deadline: Deadline | None = None,
    ) -> int:
        """Delete entries older than ``retention_s`` a batch at a time while ``keep_going()``
        says so and old entries remain; the number deleted."""
        ...


@dataclass(frozen=True, slots=True)
class QueueRetention:
    """How long the event source queue and its dead-letter queue keep a message, in seconds."""

    queue_s: int
    dlq_s: int | None  # None: the queue has no redrive policy


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
