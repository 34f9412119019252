"""The scheduled trigger: drain the queue through the same pipeline, within the time left.

Under the event source mapping Lambda receives and deletes for us; on a schedule the function
does it itself. Each round receives up to ``receives_per_round`` x 10 messages, one receive
after the other (a receive that comes back with fewer than 10 ends the round: the queue has no
more visible now), processes them as one pipeline batch (one transaction), then deletes the
ones that succeeded. One thread, as every invocation: Lambda scales by running more of them.

Failed messages are not deleted: they stay invisible for the queue's visibility timeout,
exactly as under the event source mapping, so every retry counts towards ``maxReceiveCount``
and the redrive policy dead-letters them. Nothing is received that is not processed in the
same round, so a round that raises leaves only its own messages in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from login_etl.domain.models import QueueMessage
from login_etl.pipeline import BatchOutcome
from login_etl.queue_ports import DeleteFailure, MessageQueue, ReceivedMessage

Process = Callable[[Sequence[QueueMessage]], BatchOutcome]
RECEIVE_LIMIT = 10  # messages a receive returns at most (SQS's limit)


class StopReason(StrEnum):
    """Why a drain ended."""

    QUEUE_EMPTY = "queue-empty"
    TIME_LIMIT = "time-limit"


@dataclass(slots=True)
class DrainSummary:
    """What one drain did; the scheduled invocation returns it."""

    received: int = 0
    written: int = 0
    duplicates: int = 0
    failed: int = 0
    batches: int = 0
    delete_failures: list[DeleteFailure] = field(default_factory=list)
    stopped_because: StopReason = StopReason.QUEUE_EMPTY

    def add(self, outcome: BatchOutcome) -> None:
        """Count one processed round."""
        self.batches += 1
        self.received += outcome.received
        self.written += outcome.written
        self.duplicates += outcome.duplicates
        self.failed += len(outcome.failures)

    def as_response(self) -> dict[str, int | str]:
        """The invocation's result: counts only, never message contents."""
        return {
            "received": self.received,
            "written": self.written,
            "duplicates": self.duplicates,
            "failed": self.failed,
            "batches": self.batches,
            "deleteFailures": len(self.delete_failures),
            "stoppedBecause": self.stopped_because.value,
        }


def drain(
    queue: MessageQueue,
    process: Process,
    remaining_ms: Callable[[], int],
    *,
    receives_per_round: int,
    safety_margin_ms: int,
    wait_time_ms: int,
) -> DrainSummary:
    """Receive, process and delete until the queue is empty or the time left runs short.

    A processing error (Postgres down, say) propagates; the failing round stays in flight.
    """
    summary = DrainSummary()
    slowest_round_ms = 0.0
    while True:
        # A round (its receives, its batch, its deletes) must fit in what is left.
        if remaining_ms() <= safety_margin_ms + wait_time_ms + slowest_round_ms:
            summary.stopped_because = StopReason.TIME_LIMIT
            return summary
        started = time.monotonic()
        received = _receive_round(queue, receives_per_round)
        if not received:
            return summary
        outcome = process([r.message for r in received])
        summary.add(outcome)
        failed = {f.message_id for f in outcome.failures}
        summary.delete_failures.extend(
            _delete(queue, [r for r in received if r.message.message_id not in failed])
        )
        slowest_round_ms = max(slowest_round_ms, (time.monotonic() - started) * 1000)


def _receive_round(queue: MessageQueue, receives: int) -> list[ReceivedMessage]:
    received: list[ReceivedMessage] = []
    for _ in range(receives):
        messages = queue.receive()
        received.extend(messages)
        if len(messages) < RECEIVE_LIMIT:  # none left to fill another receive now
            break
    return received


def _delete(queue: MessageQueue, messages: Sequence[ReceivedMessage]) -> list[DeleteFailure]:
    """Never raises: a delete that did not happen only means a harmless redelivery."""
    try:
        return queue.delete(messages)
    except Exception as error:  # reported per message, not fatal
        return [DeleteFailure(m.message.message_id, type(error).__name__) for m in messages]
