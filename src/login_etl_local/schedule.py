"""Plays the EventBridge schedule locally: invoke the function with a Scheduled Event until done.

Each tick is one invocation that drains the queue itself (``login_etl.drain``). Failed messages
stay invisible for the queue's visibility timeout, so the next tick comes once that passed,
until the queue is empty: processed, or dead-lettered by the redrive policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from login_etl_cli.invocation import Function
from login_etl_local.event_source_mapping import (
    HANG_GUARD_S,
    DeliveryStats,
    Handler,
    QueueNotDrainedError,
    as_function,
    queue_is_empty,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# What a tick may take: the scheduled drain stops receiving before its invocation's time is up.
SCHEDULE_TIMEOUT_S = 60.0

SCHEDULED_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "00000000-0000-0000-0000-000000000000",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "000000000000",
    "time": "1970-01-01T00:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:000000000000:rule/login-etl-local"],
    "detail": {},
}


def run_schedule(
    sqs: SQSClient,
    queue_url: str,
    function: Function | Handler,
    *,
    invocation_timeout_s: float = SCHEDULE_TIMEOUT_S,
    max_seconds: float = HANG_GUARD_S,
    on_batch: Callable[[DeliveryStats], None] | None = None,
) -> DeliveryStats:
    """Tick until the queue is empty (redrive included); ``max_seconds`` only ends a hang.

    ``invocation_timeout_s`` is a bare handler's (a ``Function`` has its own timeout).
    """
    invoked = as_function(function, invocation_timeout_s)
    visibility_s = int(
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])[
            "Attributes"
        ]["VisibilityTimeout"]
    )
    stats = DeliveryStats()
    deadline = time.monotonic() + max_seconds
    while not queue_is_empty(sqs, queue_url):
        if time.monotonic() > deadline:
            raise QueueNotDrainedError(queue_url, max_seconds)
        stats.invocations += 1
        tick = time.monotonic()
        invocation = invoked.invoke(scheduled_event())
        summary: dict[str, Any] = {}
        if invocation.function_error is None and isinstance(invocation.payload, dict):
            summary = invocation.payload
        else:
            stats.failed_invocations += 1
        stats.delivered += summary.get("received", 0)
        stats.reported_failures += summary.get("failed", 0)
        stats.failing = summary.get("failed", 0)  # this tick's: retried by the next ones
        stats.deleted += (summary.get("written", 0) + summary.get("duplicates", 0)) - summary.get(
            "deleteFailures", 0
        )
        if on_batch is not None:
            on_batch(stats)
        if summary.get("failed") or not summary:
            # The failures come back once their visibility expires (counted from their receive).
            time.sleep(max(0.0, visibility_s - (time.monotonic() - tick)))
    return stats


def scheduled_event() -> dict[str, Any]:
    """What an EventBridge rule sends on each tick, with the current time."""
    return {**SCHEDULED_EVENT, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
