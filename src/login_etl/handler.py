"""The Lambda entry point: adapts the event, delegates to the pipeline, shapes the response."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from login_etl.domain.models import QueueMessage
from login_etl.observability import logger, metrics, report
from login_etl.pipeline import process_batch
from login_etl.runtime import get_runtime


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    """SQS event source mapping -> ``{"batchItemFailures": [...]}`` (partial batch response)."""
    runtime = get_runtime()
    messages = [to_queue_message(record) for record in SQSEvent(event).records]
    outcome = process_batch(messages, runtime.mask, runtime.store, datetime.now(UTC).date())
    report(outcome)
    return outcome.batch_item_failures()


def to_queue_message(record: SQSRecord) -> QueueMessage:
    """The fields of an SQS record that the pipeline uses."""
    attributes = record.attributes
    return QueueMessage(
        message_id=record.message_id,
        body=record.body,
        sent_timestamp_ms=attributes.get("SentTimestamp"),
        group_id=attributes.get("MessageGroupId"),
    )
