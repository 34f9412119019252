"""Our batch response against Powertools' processors, the reference, on the same events."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from hypothesis import given
from hypothesis import strategies as st

from login_etl.adapters.sqs_records import to_queue_message
from login_etl.domain.models import QueueMessage
from login_etl.domain.transform import create_date
from login_etl.domain.validation import parse_login
from login_etl.pipeline import process_batch
from tests.pipeline_helpers import BAD, GOOD, MemoryStore, upper_tokens

TODAY = date(2026, 11, 24)
bodies = st.sampled_from([GOOD, BAD, "not json", GOOD.replace('"1.0"', '"1.0.0.0"')])


def validate_like_a_record_handler(record: SQSRecord) -> None:
    """What a hand-written Powertools record handler would check (no write: nothing can fail)."""
    parse_login(record.body)
    create_date(record.attributes.get("SentTimestamp"), TODAY)


def sqs_event(items: list[tuple[str, str | None]]) -> dict[str, Any]:
    records = []
    for index, (body, group) in enumerate(items):
        attributes = {"SentTimestamp": "1700000000000", "ApproximateReceiveCount": "1"}
        if group is not None:
            attributes["MessageGroupId"] = group
        records.append(
            {
                "messageId": f"m{index}",
                "receiptHandle": f"r{index}",
                "body": body,
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
            }
        )
    return {"Records": records}


def reference_failures(event: dict[str, Any], processor: BatchProcessor) -> set[str]:
    try:
        response = process_partial_response(event, validate_like_a_record_handler, processor)
    except BatchProcessingError:  # Powertools raises when all fail: every record is retried
        return {r["messageId"] for r in event["Records"]}
    return {str(item["itemIdentifier"]) for item in response["batchItemFailures"]}


def our_failures(event: dict[str, Any]) -> set[str]:
    messages: list[QueueMessage] = [to_queue_message(r) for r in event["Records"]]
    response = process_batch(messages, upper_tokens, MemoryStore(), TODAY).batch_item_failures()
    return {item["itemIdentifier"] for item in response["batchItemFailures"]}


@given(st.lists(bodies, max_size=30))
def test_standard_queue_agrees_with_batch_processor(batch: list[str]) -> None:
    event = sqs_event([(body, None) for body in batch])
    assert our_failures(event) == reference_failures(event, BatchProcessor(EventType.SQS))


@given(st.lists(st.tuples(bodies, st.sampled_from(["g1", "g2", "g3"])), max_size=30))
def test_fifo_queue_agrees_with_skip_group_on_error(batch: list[tuple[str, str]]) -> None:
    event = sqs_event([(body, group) for body, group in batch])
    reference = reference_failures(event, SqsFifoPartialProcessor(skip_group_on_error=True))
    assert our_failures(event) == reference


def test_the_example_of_the_docs() -> None:
    event = sqs_event([(GOOD, "a"), (BAD, "a"), (GOOD, "a"), (GOOD, "b"), (json.dumps([]), "b")])
    assert our_failures(event) == {"m1", "m2", "m4"}
