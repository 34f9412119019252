"""The scheduled trigger: drain the queue through the same pipeline, within the time left.

Under the event source mapping Lambda receives and deletes for us; on a schedule the function
does it itself. Each round receives up to ``receives_per_round`` x 10 messages with parallel
long polls and processes them as one pipeline batch (one transaction). The next round's
receives and this round's deletes are network waits, so they run in threads while the
pipeline works on the current round.

Failed messages are neither deleted nor released: they stay invisible for the queue's
visibility timeout, exactly as under the event source mapping, so every retry counts towards
``maxReceiveCount`` and the redrive policy dead-letters them. Only messages received and never
processed (the prefetched round, when processing raised) are released at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

from login_etl.domain.models import QueueMessage
from login_etl.pipeline import BatchOutcome
from login_etl.queue_ports import DeleteFailure, MessageQueue, ReceivedMessage

Process = Callable[[Sequence[QueueMessage]], BatchOutcome]


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

    A processing error (Postgres down, say) propagates after the prefetched messages are
    released and the pending deletes finished; the failing round stays in flight.
    """
    summary = DrainSummary()
    slowest_round_ms = 0.0
    with ThreadPoolExecutor(max_workers=receives_per_round + 2) as pool:
        deletes: list[Future[list[DeleteFailure]]] = []

        def receive_round() -> list[Future[list[ReceivedMessage]]]:
            return [pool.submit(queue.receive) for _ in range(receives_per_round)]

        def worth_another_round() -> bool:
            # The next round is received now and processed after this one: both must fit.
            needed = safety_margin_ms + max(wait_time_ms, slowest_round_ms) + slowest_round_ms
            return remaining_ms() > needed

        next_round: list[Future[list[ReceivedMessage]]] | None = (
            receive_round() if remaining_ms() > safety_margin_ms + wait_time_ms else None
        )
        try:
            while next_round is not None:
                received = _gather(next_round)
                if not received:
                    break
                next_round = receive_round() if worth_another_round() else None
                started = time.monotonic()
                try:
                    outcome = process([r.message for r in received])
                except BaseException:
                    if next_round is not None:
                        queue.release(_gather(next_round))
                    raise
                slowest_round_ms = max(slowest_round_ms, (time.monotonic() - started) * 1000)
                summary.add(outcome)
                failed = {f.message_id for f in outcome.failures}
                done = [r for r in received if r.message.message_id not in failed]
                deletes.append(pool.submit(_delete, queue, done))
            else:
                summary.stopped_because = StopReason.TIME_LIMIT
        finally:
            for pending in deletes:
                summary.delete_failures.extend(pending.result())
    return summary


def _gather(round_: list[Future[list[ReceivedMessage]]]) -> list[ReceivedMessage]:
    return [message for receive in round_ for message in receive.result()]


def _delete(queue: MessageQueue, messages: Sequence[ReceivedMessage]) -> list[DeleteFailure]:
    """Never raises: a delete that did not happen only means a harmless redelivery."""
    try:
        return queue.delete(messages)
    except Exception as error:  # reported per message, not fatal
        return [DeleteFailure(m.message.message_id, type(error).__name__) for m in messages]
