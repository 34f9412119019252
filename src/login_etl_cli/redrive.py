"""``login-etl dlq redrive``: hand the dead letters to the function itself, losslessly.

Each batch of DLQ messages is held (invisible in the DLQ for ``hold_s``), made into the SQS
event Lambda would deliver from the source queue, every message under its own ``messageId``,
with its body, attributes (``SentTimestamp`` included) and message attributes, and given to
the function (``invocation``: Lambda's ``Invoke``, or the local function process). The
messages the function does not list in ``batchItemFailures`` are deleted from the DLQ; nothing
else is, and nothing at all if it failed or answered anything but a partial batch response.

The DLQ keeps the id and ``SentTimestamp`` SQS gave a message when it was first sent, and the
function's ledger keys on the id: a message already written (its delivery committed, then
failed to acknowledge; or an interrupted redrive) is recognised and acknowledged without a
second row, and a redriven row is dated by the login, not by the redrive. The function needs
no code of its own for that. An interruption anywhere loses nothing: a message is deleted
only after the function answered that it is written (or was already); a message whose answer
never came stays in the DLQ, visible again after the hold, and the next run hands it over
again. (SQS's own ``StartMessageMoveTask`` gives the copies new ids: docs/operating.md says
when it may still be used.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from login_etl_cli.invocation import Function, encode_event
from login_etl_cli.sqs_event import lambda_record, reported_failures

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

# Lambda's limit on a synchronous invocation's payload, which the event's JSON counts against.
MAX_EVENT_BYTES = 6 * 1024 * 1024
_EVENT_FRAME_BYTES = len(encode_event({"Records": []}))
_SQS_MAX_BATCH = 10
# A receive waits this long for messages before the DLQ counts as empty: a long poll asks every
# SQS server, where a short one may answer "none" while a few messages remain.
_EMPTY_AFTER_S = 1
_THROTTLED = {"TooManyRequestsException", "ThrottlingException", "EC2ThrottledException"}


class FunctionFailedError(RuntimeError):
    """The function failed a whole batch: none of its messages was deleted from the DLQ."""


@dataclass
class RedriveSummary:
    """What one redrive did; every message it saw and did not delete is still in the DLQ."""

    invocations: int = 0
    handed: int = 0  # messages given to the function
    deleted: int = 0  # acknowledged by it (written, or found written) and deleted from the DLQ
    failed: int = 0  # listed in batchItemFailures: left in the DLQ
    refused: int = 0  # not handed over (``keep`` said no): left in the DLQ
    too_large: int = 0  # larger, alone, than an invocation's payload: left in the DLQ
    undeleted: int = 0  # acknowledged, but SQS did not delete them: a later run finds them written


@dataclass(frozen=True)
class _Ready:
    """A received message, as the record it becomes in the event, and that record's size."""

    message: MessageTypeDef
    record: dict[str, Any]
    size: int  # bytes in the event, its separating comma included


def redrive(
    sqs: SQSClient,
    dlq_url: str,
    queue_arn: str,
    function: Function,
    *,
    batch_size: int = 1000,
    max_event_bytes: int = MAX_EVENT_BYTES,
    hold_s: int = 300,
    keep: Callable[[MessageTypeDef], bool] | None = None,
    summary: RedriveSummary | None = None,
    on_progress: Callable[[RedriveSummary], None] | None = None,
) -> RedriveSummary:
    """Hand every message of ``dlq_url`` (that ``keep`` accepts) to ``function``; what it did.

    The event says the messages come from ``queue_arn`` (the queue the function is mapped to).
    Batches hold at most ``batch_size`` messages and ``max_event_bytes`` of event. Each message
    is held for ``hold_s`` once received; those left in the DLQ (failed, refused, too large)
    are released at the end, visible at once; after an interruption, after ``hold_s``. Each
    message is handed over at most once per run. ``FunctionFailedError`` (or the invocation's
    own error, a throttle say) stops the redrive, with nothing of that batch deleted.
    ``summary``: filled in as it goes, so that a caller sees what was done before a failure.
    """
    done = RedriveSummary() if summary is None else summary
    run = _Run(sqs, dlq_url, queue_arn=queue_arn, hold_s=hold_s, keep=keep, summary=done)
    try:
        while batch := run.gather(batch_size, max_event_bytes):
            run.hand_over(batch, function)
            if on_progress is not None:
                on_progress(done)
    except BaseException:
        with contextlib.suppress(Exception):  # what was held comes back after hold_s anyway
            run.release()
        raise
    run.release()
    return done


class _Run:
    """One redrive's state: what it has seen, what it holds, what it carries to the next batch."""

    def __init__(
        self,
        sqs: SQSClient,
        dlq_url: str,
        *,
        queue_arn: str,
        hold_s: int,
        keep: Callable[[MessageTypeDef], bool] | None,
        summary: RedriveSummary,
    ) -> None:
        self._sqs, self._dlq_url, self._hold_s, self._keep = sqs, dlq_url, hold_s, keep
        self._queue_arn, self._region = queue_arn, queue_arn.split(":")[3]
        self.summary = summary
        self._seen: set[str] = set()
        # message id -> receipt handle of every message received and not deleted: released at
        # the end, or on the way out of an interruption (gathered or carried ones included).
        self._held: dict[str, str] = {}
        self._carried: list[_Ready] = []  # received, but past the last batch's byte limit

    def gather(self, batch_size: int, max_event_bytes: int) -> list[_Ready]:
        """The next batch: the carried messages, then new ones until full or the DLQ is empty."""
        pending, self._carried = self._carried, []
        batch: list[_Ready] = []
        size = _EVENT_FRAME_BYTES

        def add(ready: _Ready) -> None:
            nonlocal size
            if len(batch) < batch_size and size + ready.size <= max_event_bytes:
                batch.append(ready)
                size += ready.size
            else:
                self._carried.append(ready)  # the first of the next batch

        for ready in pending:
            add(ready)
        while len(batch) < batch_size and not self._carried:
            received = self._receive(min(_SQS_MAX_BATCH, batch_size - len(batch)))
            if not received:
                break
            for ready in self._new(received, max_event_bytes):
                add(ready)
        return batch

    def hand_over(self, batch: list[_Ready], function: Function) -> None:
        """Invoke the function with the batch; delete what it acknowledged."""
        ids = {ready.message["MessageId"] for ready in batch}
        self.summary.invocations += 1
        self.summary.handed += len(batch)
        try:
            invocation = function.invoke({"Records": [ready.record for ready in batch]})
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in _THROTTLED:
                raise FunctionFailedError(
                    f"Lambda throttled the invocation ({code}), retries included: none of its"
                    f" {len(batch)} messages was deleted from the DLQ. Run this again later, or"
                    " give the function more concurrency"
                ) from error
            raise
        failed = reported_failures(invocation, ids)
        if failed is None:
            what = (
                f"failed ({invocation.error_summary()})"
                if invocation.function_error is not None
                else "answered with something other than a partial batch response"
            )
            raise FunctionFailedError(
                f"the function {what}: none of the batch's {len(batch)} messages was deleted"
                " from the DLQ. Find the cause in the function's logs, then run this again"
            )
        acknowledged = [message_id for message_id in ids if message_id not in failed]
        deleted = self._delete(acknowledged)
        for message_id in deleted:
            del self._held[message_id]
        self.summary.deleted += len(deleted)
        self.summary.undeleted += len(acknowledged) - len(deleted)
        self.summary.failed += len(failed)

    def release(self) -> None:
        """Make what this run left in the DLQ visible again at once."""
        receipts = list(self._held.values())
        self._held.clear()
        for start in range(0, len(receipts), _SQS_MAX_BATCH):
            self._sqs.change_message_visibility_batch(
                QueueUrl=self._dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(receipts[start : start + _SQS_MAX_BATCH])
                ],
            )

    def _receive(self, count: int) -> list[MessageTypeDef]:
        return self._sqs.receive_message(
            QueueUrl=self._dlq_url,
            MaxNumberOfMessages=count,
            VisibilityTimeout=self._hold_s,
            WaitTimeSeconds=_EMPTY_AFTER_S,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])

    def _new(self, received: list[MessageTypeDef], max_event_bytes: int) -> list[_Ready]:
        """The messages to hand over; the others held, to be left in the DLQ."""
        ready = []
        for message in received:
            message_id = message["MessageId"]
            self._held[message_id] = message["ReceiptHandle"]  # the latest receive's handle
            if message_id in self._seen:  # back after the hold, in this run: left alone
                continue
            self._seen.add(message_id)
            if self._keep is not None and not self._keep(message):
                self.summary.refused += 1
                continue
            record = lambda_record(message, self._queue_arn, self._region)
            size = len(encode_event(record)) + 1
            if _EVENT_FRAME_BYTES + size > max_event_bytes:
                self.summary.too_large += 1
                continue
            ready.append(_Ready(message, record, size))
        return ready

    def _delete(self, message_ids: list[str]) -> list[str]:
        """Delete from the DLQ (with each message's latest receipt handle); the ids deleted."""
        deleted = []
        for start in range(0, len(message_ids), _SQS_MAX_BATCH):
            chunk = message_ids[start : start + _SQS_MAX_BATCH]
            response = self._sqs.delete_message_batch(
                QueueUrl=self._dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": self._held[message_id]}
                    for i, message_id in enumerate(chunk)
                ],
            )
            deleted += [chunk[int(entry["Id"])] for entry in response["Successful"]]
        return deleted
