"""The SQS event Lambda hands the function, and the partial batch response it answers with.

Made from received messages by whoever plays Lambda's event source mapping: ``login-etl dlq
redrive`` (the DLQ's messages, each under its own id) and the local stack's emulator.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from login_etl_cli.invocation import Invocation

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageAttributeValueOutputTypeDef, MessageTypeDef


def lambda_record(message: MessageTypeDef, queue_arn: str, region: str) -> dict[str, Any]:
    """A received SQS message in the shape Lambda puts in ``event["Records"]``.

    ``queue_arn`` is the queue the function is mapped to (``eventSourceARN``).
    """
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody")
        or hashlib.md5(  # noqa: S324 - SQS's own checksum
            message["Body"].encode()
        ).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def _attribute(value: MessageAttributeValueOutputTypeDef) -> dict[str, Any]:
    """A message attribute as Lambda gives it: a binary value in base64, as JSON carries it."""
    attribute: dict[str, Any] = {
        "stringValue": value.get("StringValue"),
        "binaryValue": None,
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value["DataType"],
    }
    binary = value.get("BinaryValue")
    if binary is not None:
        attribute["binaryValue"] = base64.b64encode(binary).decode("ascii")
    return attribute


def reported_failures(invocation: Invocation, batch_ids: Collection[str]) -> set[str] | None:
    """The ids the function reported failed; None if its answer is no partial batch response.

    None (an error, or an answer of another shape, or an id not in the batch, which Lambda
    takes as a failure of the whole batch) means: treat every message as failed.
    """
    if invocation.function_error is not None or not isinstance(invocation.payload, dict):
        return None
    items = invocation.payload.get("batchItemFailures")
    if not isinstance(items, list):
        return None
    failed = set()
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in batch_ids:
            return None
        failed.add(identifier)
    return failed
