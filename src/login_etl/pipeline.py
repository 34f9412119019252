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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter

from login_etl.domain.errors import InvalidMessageError, Reason
from login_etl.domain.models import LoginEvent, QueueMessage, UserLoginRow
from login_etl.domain.redrive_claim import VerifyClaim
from login_etl.domain.transform import create_date, masked_row, to_row
from login_etl.domain.validation import parse_login
from login_etl.ports import LoginStore, MaskOffload, StreamingLoginStore, WriteResult

_MESSAGE_ID = itemgetter(0)  # QueueMessage.message_id, without the descriptor's call
# With a MaskOffload, it masks the last OFFLOAD_SHARE of a batch's rows, from OFFLOAD_MIN_ROWS
# rows up. ``make bench-offload`` (10,000 records, three runs of 30-40 rounds, issue 16): the
# offload buys 0.02-0.11 of the floor over none; shares from 0.3 to 0.6 differ by less than the
# runs do, 0.65 and up sometimes fall well below; 0.5 never did. Below 1,000 rows it did not
# pay (1,000 records with the threshold at 500: 0.83 of the floor against 0.86 without). The
# figures, and why it buys no more here: docs/benchmarks.md.
OFFLOAD_MIN_ROWS = 1_000
OFFLOAD_SHARE = 0.5


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
    mask: Callable[[str], str],
    verify_claim: VerifyClaim,
    store: LoginStore,
    today: date,
    *,
    offload: MaskOffload | None = None,
) -> BatchOutcome:
    """Validate, mask and write a batch; infrastructure errors from the store propagate.

    ``verify_claim`` checks a redriven copy's claim to be message X (``domain/redrive_claim``).
    Every message is validated first, so which messages get a row is known before anything is
    written; the masking (two thirds of the Python work, callgrind) is then done while the
    store writes, if it can (``StreamingLoginStore``), and partly by ``offload``, if given,
    in another process: the rows the store receives are the same.
    """
    started = time.perf_counter()
    batch = _validate(messages, verify_claim, today)
    if batch.fifo:
        _fail_later_messages_of_failed_groups(messages, batch.failures)
    pending = [mid for mid in batch.valid if mid not in batch.failures]
    rows: dict[str, UserLoginRow] = {}
    masked = _Masking(pending, batch.valid, mask, rows, offload)
    keys = batch.keys
    if isinstance(store, StreamingLoginStore):
        result = store.write_streamed([keys[mid] for mid in pending], masked)
    else:
        result = store.write([(keys[mid], row) for mid, row in zip(pending, masked, strict=True)])
    prepared = masked.finished or time.perf_counter()
    refused = bool(result.rejected)
    if refused:
        result = _write_without_refused(messages, batch, rows, store, result)

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
    message, after the write, was 2 ms of a 10,000-record batch (``benchmarks.phases``).
    """
    in_order = dict.fromkeys(map(_MESSAGE_ID, messages))
    return list(map(failures.__getitem__, filter(failures.__contains__, in_order)))


@dataclass(slots=True)
class _Validated:
    """A batch sorted out: the ledger id of each message, the valid ones, the failed ones."""

    keys: dict[str, str] = field(default_factory=dict)  # message id -> idempotency key
    valid: dict[str, tuple[LoginEvent, date]] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)  # in the batch's order
    duplicates: int = 0
    fifo: bool = False  # some message has a MessageGroupId


def _validate(
    messages: Sequence[QueueMessage], verify_claim: VerifyClaim, today: date
) -> _Validated:
    batch = _Validated()
    keys, valid, failures = batch.keys, batch.valid, batch.failures
    seen: set[str] = set()
    for message in messages:
        message_id, body, sent_timestamp_ms, group, claim, defect = message
        if group is not None:
            batch.fifo = True
        if message_id in keys or message_id in failures:
            batch.duplicates += 1  # the same message twice in one batch: one effect
            continue
        if defect is None and claim is None:
            key = message_id  # the usual message: _identity's first case, inline
        else:
            try:
                key, sent_timestamp_ms = _identity(message, verify_claim)
            except InvalidMessageError as error:
                failures[message_id] = Failure(message_id, error.reason, error.detail)
                continue
        if key in seen:
            batch.duplicates += 1  # two copies of one redriven message: one effect
            continue
        keys[message_id] = key
        seen.add(key)
        try:
            event = parse_login(body)
            day = create_date(sent_timestamp_ms, today)
        except InvalidMessageError as error:
            failures[message_id] = Failure(message_id, error.reason, error.detail)
            continue
        valid[message_id] = (event, day)
    return batch


class _Masking:
    """The rows of the pending messages, masked one at a time as the store asks for them.

    Keeps each row (a refused row means writing the others again) and the time the last one
    was made (``prepare_ms``: with a streaming store, the write ran alongside).

    With an ``offload``, the values of the last rows are handed to it at once, here, before
    the store starts (its writer thread, for one); this process masks the first rows
    meanwhile, then takes the offload's tokens for the others, in the same order.
    """

    def __init__(
        self,
        pending: list[str],
        valid: dict[str, tuple[LoginEvent, date]],
        mask: Callable[[str], str],
        rows: dict[str, UserLoginRow],
        offload: MaskOffload | None = None,
    ) -> None:
        self._pending, self._valid, self._mask, self._rows = pending, valid, mask, rows
        self.finished: float | None = None
        self._split = len(pending)
        self._tokens: Callable[[], list[str]] | None = None
        if offload is not None and len(pending) >= OFFLOAD_MIN_ROWS:
            self._split = len(pending) - int(len(pending) * OFFLOAD_SHARE)
            values: list[str] = []
            for message_id in pending[self._split :]:
                event = valid[message_id][0]
                values += (event.ip, event.device_id)  # to_row's order
            self._tokens = offload.submit(values)

    def __iter__(self) -> Iterator[UserLoginRow]:
        mask, valid, rows, pending = self._mask, self._valid, self._rows, self._pending
        for message_id in pending[: self._split]:
            # Popped: each event is freed as soon as its row is made, while its memory is still
            # in the cache, not all at the end of the batch, after the write. With the handler
            # freeing the messages early too, the time after the write fell from 10 to 5.4 ms
            # for 10,000 records (one instrumented run, issue 16).
            event, day = valid.pop(message_id)
            row = rows[message_id] = to_row(event, mask, day)
            yield row
        if self._tokens is not None:
            tokens = iter(self._tokens())
            for message_id in pending[self._split :]:
                event, day = valid.pop(message_id)
                row = rows[message_id] = masked_row(event, next(tokens), next(tokens), day)
                yield row
        self.finished = time.perf_counter()


def _write_without_refused(
    messages: Sequence[QueueMessage],
    batch: _Validated,
    rows: dict[str, UserLoginRow],
    store: LoginStore,
    result: WriteResult,
) -> WriteResult:
    """Fail the rows Postgres refused (and, on FIFO queues, their groups'), write the rest."""
    keys, failures = batch.keys, batch.failures
    given = {keys[mid] for mid in rows if mid not in failures}
    by_key = {keys[mid]: mid for mid in rows}
    while result.rejected:
        if not result.rejected.keys() <= given:
            raise RuntimeError("the store rejected ids it was not given")  # would loop forever
        for key, sqlstate in result.rejected.items():
            message_id = by_key[key]
            failures[message_id] = Failure(
                message_id, Reason.REJECTED_BY_DATABASE, f"Postgres refused the row ({sqlstate})"
            )
        if batch.fifo:
            _fail_later_messages_of_failed_groups(messages, failures)
        retry = [(keys[mid], row) for mid, row in rows.items() if mid not in failures]
        given = {key for key, _ in retry}
        result = store.write(retry)
    return result


def _identity(message: QueueMessage, verify_claim: VerifyClaim) -> tuple[str, str | None]:
    """What the ledger records and the SentTimestamp the row is dated by.

    The message's own id and time, or, for a redriven copy whose claim verifies and is fresh
    (``domain/redrive_claim``), the original message's: the copies of one login are written
    once, with the day it was sent. ``InvalidMessageError`` for an odd record (its ``defect``)
    or a claim that does not verify. Such a claim fails the message (logged, retried, then
    dead-lettered): skipping the message would let any producer suppress logins by naming
    other messages' ids, and ignoring the claim would let a genuine copy be written twice. A
    claim that verifies but was signed long before this message was sent is a replay onto a
    later login with the same body: that login counts as itself.
    """
    if message.defect is not None:
        raise message.defect  # the record itself is odd: it fails before anything else
    if message.redrive_claim is None:
        return message.message_id, message.sent_timestamp_ms
    claim = verify_claim(message.redrive_claim, message.body)
    if not claim.is_fresh_for(message.sent_timestamp_ms):
        return message.message_id, message.sent_timestamp_ms
    return claim.original_id, str(claim.original_sent_ms)


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
