"""The Lambda entry point: recognises the trigger, delegates, shapes the response.

Two triggers share one pipeline: the SQS event source mapping (a batch in the event, partial
batch response) and a scheduled EventBridge rule (the function drains the queue itself). A
second rule, with the constant input ``{"action": "prune-ledger"}``, keeps the ledger bounded.
"""

from __future__ import annotations

import gc

from login_etl.gc_pause import cyclic_gc_paused

# The imports make tens of thousands of objects that live as long as the container, and no
# garbage: the collector, run many times while they are made, would find nothing, and every
# later full collection would walk them all again. So it is paused, and they are frozen out of
# every collection (the figure: docs/benchmarks.md, "Cold start").
with cyclic_gc_paused():
    from collections.abc import Sequence
    from datetime import UTC, datetime
    from typing import Any

    from aws_lambda_powertools.metrics.functions import is_metrics_disabled
    from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, SQSEvent
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from login_etl.adapters.sqs_records import to_queue_messages
    from login_etl.deadline import Deadline
    from login_etl.domain.models import QueueMessage
    from login_etl.domain.validation import key_names
    from login_etl.observability import (
        logger,
        metrics,
        report,
        report_drain,
        report_ledger_window,
        report_prune,
    )
    from login_etl.pipeline import BatchOutcome, process_batch
    from login_etl.runtime import Runtime, get_runtime

    gc.freeze()  # while paused: resumed first, the collector would walk them all at once

SCHEDULED_EVENT = "Scheduled Event"
PRUNE_LEDGER_ACTION = "prune-ledger"  # the PruneLedger rule's constant input's "action"

# The drain (drain.py, the SQS queue adapter) and the prune (ledger_pruning.py)
# are imported by their own handlers below: the SQS trigger, the function's cold start in
# practice, needs neither (docs/benchmarks.md, "Cold start").


class UnsupportedEventError(ValueError):
    """The event is none of: an SQS batch, a scheduled event, a pruning request."""


# Powertools emits the cold-start metric even when metrics are disabled: ask only if enabled.
@metrics.log_metrics(capture_cold_start_metric=not is_metrics_disabled())
@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS batch -> ``{"batchItemFailures": [...]}``; scheduled event -> a drain summary;
    ``{"action": "prune-ledger"}`` -> a pruning summary."""
    if "Records" in event:
        return handle_sqs_batch(SQSEvent(event), context, get_runtime())
    if EventBridgeEvent(event).get("detail-type") == SCHEDULED_EVENT:
        return handle_schedule(context, get_runtime())
    if event.get("action") == PRUNE_LEDGER_ACTION:
        return handle_prune(context, get_runtime())
    # The keys only: an unknown event may still carry PII in its values.
    raise UnsupportedEventError(f"unsupported event with keys {key_names(event)}")


def handle_sqs_batch(event: SQSEvent, context: LambdaContext, runtime: Runtime) -> dict[str, Any]:
    """The event source mapping's batch, with a partial batch response."""
    # The raw records, not SQSRecord wrappers: a wrapper and a property call for each field
    # read were a large part of the batch (docs/benchmarks.md, "SQS records"). The messages
    # are a temporary, not a local: freed before the collector resumes, which would otherwise
    # traverse all of them at once before returning (docs/benchmarks.md, "The end of a batch").
    deadline = Deadline(context.get_remaining_time_in_millis)
    with cyclic_gc_paused():
        messages = to_queue_messages(event["Records"])
        return _process(messages, deadline, runtime).batch_item_failures()


def handle_schedule(context: LambdaContext, runtime: Runtime) -> dict[str, Any]:
    """Drain ``QUEUE_URL`` until it is empty or the invocation's time runs short."""
    from login_etl.drain import drain  # noqa: PLC0415 - see the module's imports

    settings = runtime.settings
    deadline = Deadline(context.get_remaining_time_in_millis)
    summary = drain(
        runtime.queue(),
        lambda messages: _process(messages, deadline, runtime),
        context.get_remaining_time_in_millis,
        receives_per_round=settings.drain_receives_per_batch,
        safety_margin_ms=settings.drain_safety_margin_ms,
        wait_time_ms=settings.drain_wait_s * 1000,
    )
    report_drain(summary)
    return summary.as_response()


def handle_prune(context: LambdaContext, runtime: Runtime) -> dict[str, Any]:
    """Forget ledger entries older than the retention window, within the time left."""
    from login_etl.ledger_pruning import prune_ledger  # noqa: PLC0415 - see the module's imports

    settings = runtime.settings
    window = runtime.ledger_window()
    report_ledger_window(window, settings)
    summary = prune_ledger(
        runtime.store,
        window.seconds,
        settings.ledger_prune_batch_rows,
        Deadline(context.get_remaining_time_in_millis),
    )
    report_prune(summary)
    return summary.as_response()


def _process(
    messages: Sequence[QueueMessage], deadline: Deadline, runtime: Runtime
) -> BatchOutcome:
    tokens_of = runtime.key.tokens_of()
    today = datetime.now(UTC).date()
    with cyclic_gc_paused():
        outcome = process_batch(messages, tokens_of, runtime.store, today, deadline)
    report(outcome)
    return outcome
