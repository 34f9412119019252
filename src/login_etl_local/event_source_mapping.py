"""Delivers a queue to the function the way Lambda's SQS event source mapping does.

Receive a batch, invoke the function with the exact SQS event shape, delete what succeeded,
leave the reported failures (or the whole batch, if the function failed or answered
malformed) to the visibility timeout, so the queue's redrive policy dead-letters them.

``login-etl run`` invokes a ``FunctionProcess`` (the function in a process of its own, as in
Lambda). A bare handler is called in this process (``InProcess``): the function's tests use
that, to wrap the handler with faults and to read its state.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from login_etl_cli.invocation import MAX_FUNCTION_S, Function, Invocation
from login_etl_cli.signals import shielded
from login_etl_cli.sqs_event import lambda_record, reported_failures

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

__all__ = [
    "HANG_GUARD_S",
    "DeliveryStats",
    "Handler",
    "InProcess",
    "LocalContext",
    "QueueNotDrainedError",
    "as_function",
    "lambda_record",
    "queue_is_empty",
    "run_event_source_mapping",
]

_SQS_MAX_RECEIVE = 10
# How long a delivery may run before it counts as hung: far above any real run, so that a slow
# machine only makes it slower.
HANG_GUARD_S = 1800.0


class QueueNotDrainedError(RuntimeError):
    """Messages were still on the queue when the hang guard ran out."""

    def __init__(self, queue_url: str, seconds: float) -> None:
        super().__init__(f"{queue_url} still holds messages after {seconds:.0f} s")


@dataclass
class LocalContext:
    """The parts of the Lambda context object that Powertools and our code read."""

    function_name: str = "login-etl-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 128
    timeout_s: float = float(MAX_FUNCTION_S)
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


@dataclass
class DeliveryStats:
    """What the mapping did over a whole run."""

    invocations: int = 0
    failed_invocations: int = 0
    delivered: int = 0
    deleted: int = 0
    reported_failures: int = 0
    lost_deletes: int = 0
    deliveries_by_id: Counter[str] = field(default_factory=Counter)
    # Messages whose latest delivery failed and that will be delivered again (not those the
    # redrive policy is about to dead-letter): what "failing, being retried" counts.
    failing: int = 0


class InProcess:
    """A handler called in this process, its exceptions turned into Lambda's error answer."""

    def __init__(self, handler: Handler, timeout_s: float = MAX_FUNCTION_S) -> None:
        self._handler = handler
        self._timeout_s = timeout_s

    def invoke(self, event: dict[str, Any]) -> Invocation:
        """Call the handler with a fresh context of ``timeout_s``."""
        try:
            return Invocation(self._handler(event, LocalContext(timeout_s=self._timeout_s)))
        except Exception as error:
            return Invocation(
                {"errorType": type(error).__name__, "errorMessage": str(error)}, "Unhandled"
            )

    def __enter__(self) -> InProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


def as_function(function: Function | Handler, timeout_s: float = MAX_FUNCTION_S) -> Function:
    """``function`` itself, or a bare handler called in this process with ``timeout_s``."""
    if isinstance(function, Function):
        return function
    return InProcess(function, timeout_s)


def run_event_source_mapping(
    sqs: SQSClient,
    queue_url: str,
    function: Function | Handler,
    *,
    batch_size: int = 10,
    retry_after_s: int = 1,
    visibility_timeout_s: int = 60,
    max_seconds: float = HANG_GUARD_S,
    on_batch: Callable[[DeliveryStats], None] | None = None,
    lose_delete_ratio: float = 0.0,
    seed: int = 0,
) -> DeliveryStats:
    """Deliver until the queue is empty (redrive included).

    ``max_seconds`` only ends a hang, loudly (``QueueNotDrainedError``): stopping quietly
    with messages left made a slow machine look like a wrong count.

    Messages are received with ``visibility_timeout_s`` (longer than any batch takes). A
    local shortcut, not what Lambda does: the failed ones then get ``retry_after_s`` left, so
    retries (and the redrive after ``maxReceiveCount`` receives) take seconds, not minutes.

    ``lose_delete_ratio`` injects a fault: that share of the successful messages is not
    deleted, as if the function had crashed after its commit, so SQS delivers them again.
    """
    rng = random.Random(seed)  # noqa: S311 - fault injection, not security
    invoked = as_function(function)
    lost_before: set[str] = set()
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn", "RedrivePolicy"]
    )["Attributes"]
    arn = attributes["QueueArn"]
    region = arn.split(":")[3]
    max_receives = _max_receive_count(attributes.get("RedrivePolicy"))
    failing: set[str] = set()
    stats = DeliveryStats()
    deadline = time.monotonic() + max_seconds
    with _given_back_if_interrupted(sqs, queue_url) as held:
        while True:
            if time.monotonic() > deadline:
                raise QueueNotDrainedError(queue_url, max_seconds)
            held.clear()
            messages = _receive_batch(sqs, queue_url, batch_size, visibility_timeout_s, held)
            if not messages:
                if queue_is_empty(sqs, queue_url):
                    break
                time.sleep(0.2)
                continue
            event = {"Records": [lambda_record(m, arn, region) for m in messages]}
            failed = _invoke(invoked, event, stats)
            succeeded = [m for m in messages if m["MessageId"] not in failed]
            lost = {
                m["MessageId"]
                for m in succeeded
                if m["MessageId"] not in lost_before and rng.random() < lose_delete_ratio
            }
            lost_before |= lost  # each message is delivered twice at most, as the fault says
            stats.lost_deletes += len(lost)
            stats.deleted += _delete(
                sqs, queue_url, [m for m in succeeded if m["MessageId"] not in lost]
            )
            again = [m for m in messages if m["MessageId"] in failed or m["MessageId"] in lost]
            held[:] = again
            _retry_after(sqs, queue_url, again, retry_after_s)
            held.clear()
            failing -= {m["MessageId"] for m in messages}
            failing |= {
                m["MessageId"]
                for m in messages
                if m["MessageId"] in failed and _receives(m) < max_receives
            }
            stats.failing = len(failing)
            stats.delivered += len(messages)
            stats.deliveries_by_id.update(m["MessageId"] for m in messages)
            if on_batch is not None:
                on_batch(stats)
    return stats


@contextlib.contextmanager
def _given_back_if_interrupted(sqs: SQSClient, queue_url: str) -> Iterator[list[MessageTypeDef]]:
    """A list of what is received and neither deleted nor given back yet, made visible again
    at once if the block ends in an exception (Ctrl-C): not after the visibility timeout.

    Shielded, so that a second Ctrl-C does not cut it short. An error here (the emulator gone
    with the same Ctrl-C) leaves them to their timeout: the interruption is what is reported.
    A batch written and not deleted comes back too; the ledger skips it on its next delivery.
    """
    held: list[MessageTypeDef] = []
    try:
        yield held
    except BaseException:
        if held:
            with shielded(), contextlib.suppress(Exception):
                _retry_after(sqs, queue_url, held, 0)
        raise


def _max_receive_count(redrive_policy: str | None) -> float:
    """The redrive policy's ``maxReceiveCount``; no policy: a message is retried for ever."""
    if not redrive_policy:
        return math.inf
    return int(json.loads(redrive_policy)["maxReceiveCount"])


def _receives(message: MessageTypeDef) -> int:
    return int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))


def _invoke(function: Function, event: dict[str, Any], stats: DeliveryStats) -> set[str]:
    """The ids to keep on the queue: the reported ones, or all if the answer is unusable."""
    stats.invocations += 1
    batch_ids = {r["messageId"] for r in event["Records"]}
    failed = reported_failures(function.invoke(event), batch_ids)
    if failed is None:  # an error, or unknown or empty ids: Lambda retries the whole batch
        stats.failed_invocations += 1
        return batch_ids
    stats.reported_failures += len(failed)
    return failed


def _receive_batch(
    sqs: SQSClient,
    queue_url: str,
    batch_size: int,
    visibility_timeout_s: int,
    held: list[MessageTypeDef],
) -> list[MessageTypeDef]:
    """Up to ``batch_size`` messages, each also added to ``held`` as soon as it is received."""
    batch: list[MessageTypeDef] = []
    while len(batch) < batch_size:
        received = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(_SQS_MAX_RECEIVE, batch_size - len(batch)),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=visibility_timeout_s,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not received:
            break
        held.extend(received)
        batch.extend(received)
    return batch


def _delete(sqs: SQSClient, queue_url: str, messages: list[MessageTypeDef]) -> int:
    deleted = 0
    for start in range(0, len(messages), _SQS_MAX_RECEIVE):
        chunk = messages[start : start + _SQS_MAX_RECEIVE]
        response = sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
            ],
        )
        deleted += len(response.get("Successful", []))
    return deleted


def _retry_after(
    sqs: SQSClient, queue_url: str, messages: list[MessageTypeDef], seconds: int
) -> None:
    for start in range(0, len(messages), _SQS_MAX_RECEIVE):
        chunk = messages[start : start + _SQS_MAX_RECEIVE]
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": seconds}
                for i, m in enumerate(chunk)
            ],
        )


def queue_is_empty(sqs: SQSClient, queue_url: str) -> bool:
    """Nothing visible and nothing in flight: every message was deleted or dead-lettered."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]) == 0
        and int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 0
    )
