"""One batch of queue messages -> rows written exactly once, and the messages that failed.

This is the whole processing logic, shared by both triggers (the SQS event source mapping and
the scheduled drain). It holds no I/O of its own: the store is injected.

Why not Powertools' ``BatchProcessor``: it calls a record handler once per message, and the
bulk write (one COPY and one ledger insert per batch, in one transaction) is a batch-level step
it has no hook for. The response keeps its contract exactly: ``{"batchItemFailures":
[{"itemIdentifier": <messageId>}, ...]}``, empty on full success, only ids from this batch, and
on FIFO queues the skip-group-on-error rule of ``SqsFifoPartialProcessor``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

from login_etl.domain.errors import InvalidMessageError, Reason
from login_etl.domain.models import QueueMessage, UserLoginRow
from login_etl.domain.transform import create_date, to_row
from login_etl.domain.validation import parse_login
from login_etl.ports import LoginStore


@dataclass(frozen=True, slots=True)
class Failure:
    """A message that stays on the queue: retried, then dead-lettered by the redrive policy."""

    message_id: str
    reason: Reason
    detail: str


@dataclass(slots=True)
class BatchOutcome:
    """What happened to every message of one batch."""

    received: int = 0
    written: int = 0
    duplicates: int = 0
    failures: list[Failure] = field(default_factory=list)

    def batch_item_failures(self) -> dict[str, list[dict[str, str]]]:
        """The response Lambda's ReportBatchItemFailures expects."""
        return {"batchItemFailures": [{"itemIdentifier": f.message_id} for f in self.failures]}


def process_batch(
    messages: Sequence[QueueMessage],
    mask: Callable[[str], str],
    store: LoginStore,
    today: date,
) -> BatchOutcome:
    """Validate, mask and write a batch; infrastructure errors from the store propagate."""
    outcome = BatchOutcome(received=len(messages))
    failures: dict[str, Failure] = {}
    rows: dict[str, UserLoginRow] = {}
    for message in messages:
        if message.message_id in rows or message.message_id in failures:
            outcome.duplicates += 1  # the same delivery twice in one batch: one effect
            continue
        try:
            event = parse_login(message.body)
            day = create_date(message.sent_timestamp_ms, today)
        except InvalidMessageError as error:
            failures[message.message_id] = Failure(message.message_id, error.reason, error.detail)
            continue
        rows[message.message_id] = to_row(event, mask, day)

    while True:
        _fail_later_messages_of_failed_groups(messages, failures)
        pending = [(mid, row) for mid, row in rows.items() if mid not in failures]
        result = store.write(pending)
        if not result.rejected:
            break
        if not result.rejected.keys() <= {mid for mid, _ in pending}:
            raise RuntimeError("the store rejected ids it was not given")  # would loop forever
        for message_id, sqlstate in result.rejected.items():
            failures[message_id] = Failure(
                message_id, Reason.REJECTED_BY_DATABASE, f"Postgres refused the row ({sqlstate})"
            )

    outcome.written = result.written
    outcome.duplicates += result.duplicates
    in_order = dict.fromkeys(m.message_id for m in messages)
    outcome.failures = [failures[mid] for mid in in_order if mid in failures]
    return outcome


def _fail_later_messages_of_failed_groups(
    messages: Sequence[QueueMessage], failures: dict[str, Failure]
) -> None:
    """FIFO: once a message of a group fails, every later one of that group fails too."""
    failed_groups: set[str] = set()
    for message in messages:
        group = message.group_id
        if group is None:
            continue
        if message.message_id in failures:
            failed_groups.add(group)
        elif group in failed_groups:
            failures[message.message_id] = Failure(
                message.message_id,
                Reason.EARLIER_IN_GROUP_FAILED,
                "an earlier message of its FIFO group failed",
            )
