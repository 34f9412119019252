"""The ledger's retention: forget message ids once they can no longer come back.

The exactly-once ledger grows by a row (about 150 bytes with its index) per message; kept
forever that is 140 GB per billion messages, and once it outgrows memory every insert of a
random message id is random I/O. A message id is only needed while the message can still be
delivered again (``ledger_window``), so older entries are deleted, a small batch
per transaction so that writers never wait on a long DELETE.

Run by a scheduled rule of its own (template ``PruneLedger``, event ``{"action":
"prune-ledger"}``) and by ``login-etl ledger prune``; it stops early when the invocation's time
runs short and the next run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from login_etl.deadline import Deadline
from login_etl.ports import LedgerPruner
from login_etl.queue_ports import QueueRetention


@dataclass(frozen=True, slots=True)
class LedgerWindow:
    """How long a message id must stay in the ledger, and whether the settings said less."""

    seconds: int
    # The queues keep messages longer than QUEUE_RETENTION_SECONDS / DLQ_RETENTION_SECONDS say
    # (drift, or queues this template did not make): the window follows the queues.
    settings_below_queues: bool = False
    # The queues could not be read (no QUEUE_URL, no permission, SQS down): settings only.
    queues_unread: bool = False


def ledger_window(
    queue_s: int, dlq_s: int, margin_s: int, observed: QueueRetention | None
) -> LedgerWindow:
    """The window: as long as a message id can come back, never shorter than the real queues.

    A message can be received until its queue's retention ends; dead-lettered, until the DLQ's
    retention ends, counted from the original enqueue on standard queues and from the move on
    FIFO ones, so at most a queue retention later. ``login-etl dlq redrive`` hands a dead
    letter to the function with its own id, so that is the last time the id can come. Hence
    queue + DLQ retention, plus a margin, each the longer of the setting and the queue.
    """
    if observed is None:
        return LedgerWindow(queue_s + dlq_s + margin_s, queues_unread=True)
    real_queue_s, real_dlq_s = observed.queue_s, observed.dlq_s or 0
    below = real_queue_s > queue_s or real_dlq_s > dlq_s
    seconds = max(queue_s, real_queue_s) + max(dlq_s, real_dlq_s) + margin_s
    return LedgerWindow(seconds, settings_below_queues=below)


class PruneStop(StrEnum):
    """Why a pruning run ended."""

    DONE = "done"
    TIME_LIMIT = "time-limit"


@dataclass(frozen=True, slots=True)
class PruneSummary:
    """What one pruning run did; the invocation returns it (counts only)."""

    deleted: int
    retention_s: int
    stopped_because: PruneStop

    def as_response(self) -> dict[str, int | str]:
        """The invocation's result."""
        return {
            "deleted": self.deleted,
            "retentionSeconds": self.retention_s,
            "stoppedBecause": self.stopped_because.value,
        }


def prune_ledger(
    pruner: LedgerPruner, retention_s: int, batch_rows: int, deadline: Deadline
) -> PruneSummary:
    """Delete entries older than ``retention_s`` until none is left or time runs short."""
    out_of_time = False

    def keep_going() -> bool:
        nonlocal out_of_time
        out_of_time = deadline.left_s() <= 0
        return not out_of_time

    deleted = pruner.prune(retention_s, batch_rows, keep_going, deadline)
    stop = PruneStop.TIME_LIMIT if out_of_time else PruneStop.DONE
    return PruneSummary(deleted, retention_s, stop)
