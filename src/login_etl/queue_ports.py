"""The queue as the scheduled drain and the ledger's prune see it; ``adapters/sqs_queue``
implements it.

Apart from ``ports``: the SQS trigger, whose batches Lambda receives and deletes, needs none of
it, and its cold start does not import it (docs/benchmarks.md, "Cold start").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from login_etl.domain.models import QueueMessage


@dataclass(frozen=True, slots=True)
class QueueRetention:
    """How long the event source queue and its dead-letter queue keep a message, in seconds."""

    queue_s: int
    dlq_s: int | None  # None: the queue has no redrive policy


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
