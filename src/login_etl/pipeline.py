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

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter

from login_etl.deadline import Deadline
from login_etl.domain.errors import InvalidMessageError, Reason
from login_etl.domain.masking import TokensOf
from login_etl.domain.models import LoginEvent, QueueMessage, UserLoginRow
from login_etl.domain.transform import create_date, to_rows
from login_etl.domain.validation import parse_login
from login_etl.ports import LoginStore, WriteResult

_MESSAGE_ID = itemgetter(0)  # QueueMessage.message_id, without the descriptor's call


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
    prepare_ms: float = 0.0  # parse, validate, mask
    write_ms: float = 0.0  # the store's transaction(s)

    def batch_item_failures(self) -> dict[str, list[dict[str, str]]]:
        """The response Lambda's ReportBatchItemFailures expects."""
        return {"batchItemFailures": [{"itemIdentifier": f.message_id} for f in self.failures]}


def process_batch(
    messages: Sequence[QueueMessage],
    tokens_of: TokensOf,
    store: LoginStore,
    today: date,
    deadline: Deadline | None = None,
) -> BatchOutcome:
    """Validate, mask and write a batch; infrastructure errors from the store propagate.

    Every message is validated and masked first, so which messages get a row is known, and
    every row made, before the store's transaction begins. ``deadline``: the store raises
    rather than write past it (the whole batch is then retried).
    """
    started = time.perf_counter()
    batch = _validate(messages, today)
    if batch.fifo:
        _fail_later_messages_of_failed_groups(messages, batch.failures)
    rows = _masked_rows(batch, tokens_of)
    prepared = time.perf_counter()
    result = store.write(list(rows.items()), deadline)
    refused = bool(result.rejected)
    if refused:
        result = _write_without_refused(messages, batch, rows, result, store.write, deadline)

    outcome = BatchOutcome(received=len(messages), duplicates=batch.duplicates)
    outcome.prepare_ms = (prepared - started) * 1000
    outcome.write_ms = (time.perf_counter() - prepared) * 1000
    outcome.written = result.written
    outcome.duplicates += result.duplicates
    if batch.fifo or refused:
        outcome.failures = _in_batch_order(messages, batch.failures)
    else:  # only _validate failed messages: it did so in the batch's order
        outcome.failures = list(batch.failures.values())
    return outcome


def _in_batch_order(
    messages: Sequence[QueueMessage], failures: dict[str, Failure]
) -> list[Failure]:
    """The failures in the order of the batch, each once, whichever step failed them.

    Only when a later step failed some (a FIFO group, a refused row): a pass over every
    message, after the write, is a visible part of a batch's tail (docs/benchmarks.md, "The
    end of a batch").
    """
    in_order = dict.fromkeys(map(_MESSAGE_ID, messages))
    return list(map(failures.__getitem__, filter(failures.__contains__, in_order)))


@dataclass(slots=True)
class _Validated:
    """A batch sorted out: the valid messages (by id), the failed ones, the repeats."""

    valid: dict[str, tuple[LoginEvent, date]] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)  # in the batch's order
    duplicates: int = 0
    fifo: bool = False  # some message has a MessageGroupId


def _validate(messages: Sequence[QueueMessage], today: date) -> _Validated:
    batch = _Validated()
    valid, failures = batch.valid, batch.failures
    for message in messages:
        message_id, body, sent_timestamp_ms, group, defect = message
        if group is not None:
            batch.fifo = True
        if message_id in valid or message_id in failures:
            batch.duplicates += 1  # the same message twice in one batch: one effect
            continue
        if defect is not None:  # the record itself is odd: it fails before anything else
            failures[message_id] = Failure(message_id, defect.reason, defect.detail)
            continue
        try:
            event = parse_login(body)
            day = create_date(sent_timestamp_ms, today)
        except InvalidMessageError as error:
            failures[message_id] = Failure(message_id, error.reason, error.detail)
            continue
        valid[message_id] = (event, day)
    return batch


def _masked_rows(batch: _Validated, tokens_of: TokensOf) -> dict[str, UserLoginRow]:
    """The row of every valid message that no later step failed (a FIFO group), by id."""
    valid, failures = batch.valid, batch.failures
    if batch.fifo:
        for message_id in valid.keys() & failures.keys():
            del valid[message_id]
    rows = to_rows(valid, tokens_of)
    valid.clear()  # the events, before the write: the rows are all that is needed now
    return rows


def _write_without_refused(  # noqa: PLR0917 - private, one caller
    messages: Sequence[QueueMessage],
    batch: _Validated,
    rows: dict[str, UserLoginRow],
    result: WriteResult,
    write: Callable[[list[tuple[str, UserLoginRow]], Deadline | None], WriteResult],
    deadline: Deadline | None,
) -> WriteResult:
    """Fail the rows Postgres refused (and, on FIFO queues, their groups'), write the rest."""
    failures = batch.failures
    given = rows.keys() - failures.keys()
    while result.rejected:
        if not result.rejected.keys() <= given:
            raise RuntimeError("the store rejected ids it was not given")  # would loop forever
        for message_id, sqlstate in result.rejected.items():
            failures[message_id] = Failure(
                message_id, Reason.REJECTED_BY_DATABASE, f"Postgres refused the row ({sqlstate})"
            )
        if batch.fifo:
            _fail_later_messages_of_failed_groups(messages, failures)
        retry = [(mid, row) for mid, row in rows.items() if mid not in failures]
        given = {mid for mid, _ in retry}
        result = write(retry, deadline)
    return result


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
