"""The login queue as the scheduled drain sees it: receive, delete.

The batch calls are chunked in tens (the SQS limit), and their per-entry failures are read:
``DeleteMessageBatch`` answers HTTP 200 even when some entries failed, so ignoring its
``Failed`` list would silently redeliver (harmless, thanks to the ledger, but unreported).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from login_etl.domain.models import QueueMessage
from login_etl.queue_ports import DeleteFailure, QueueRetention, ReceivedMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

SQS_BATCH_LIMIT = 10


class SqsQueue:
    """``MessageQueue`` on an SQS queue (standard or FIFO)."""

    def __init__(self, client: SQSClient, queue_url: str, *, wait_time_s: int) -> None:
        self._client = client
        self._queue_url = queue_url
        self._wait_time_s = wait_time_s

    def receive(self) -> list[ReceivedMessage]:
        """Up to 10 messages with the attributes the pipeline reads, long polling."""
        response = self._client.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=SQS_BATCH_LIMIT,
            WaitTimeSeconds=self._wait_time_s,
            MessageSystemAttributeNames=["SentTimestamp", "MessageGroupId"],
        )
        return [_received(m) for m in response.get("Messages", [])]

    def delete(self, messages: Sequence[ReceivedMessage]) -> list[DeleteFailure]:
        """DeleteMessageBatch in tens; the entries SQS refused, by message id."""
        failures: list[DeleteFailure] = []
        for chunk in _chunks(messages):
            response = self._client.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)
                ],
            )
            failures.extend(
                DeleteFailure(chunk[int(entry["Id"])].message.message_id, entry["Code"])
                for entry in response.get("Failed", [])
            )
        return failures


def _received(message: MessageTypeDef) -> ReceivedMessage:
    attributes = message.get("Attributes", {})
    return ReceivedMessage(
        QueueMessage(
            message_id=message["MessageId"],
            body=message["Body"],
            sent_timestamp_ms=attributes.get("SentTimestamp"),
            group_id=attributes.get("MessageGroupId"),
        ),
        message["ReceiptHandle"],
    )


def _chunks(messages: Sequence[ReceivedMessage]) -> Iterator[Sequence[ReceivedMessage]]:
    for start in range(0, len(messages), SQS_BATCH_LIMIT):
        yield messages[start : start + SQS_BATCH_LIMIT]


def queue_retention(client: SQSClient, queue_url: str) -> QueueRetention:
    """The queue's ``MessageRetentionPeriod`` and its dead-letter queue's (``RedrivePolicy``).

    Raises what boto3 raises (no permission, no such queue): the caller decides.
    """
    attributes = client.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["MessageRetentionPeriod", "RedrivePolicy"]
    )["Attributes"]
    queue_s = int(attributes["MessageRetentionPeriod"])
    policy = attributes.get("RedrivePolicy")
    if not policy:
        return QueueRetention(queue_s, None)
    # arn:aws:sqs:region:account:name
    *_, account, name = str(json.loads(policy)["deadLetterTargetArn"]).split(":")
    dlq_url = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    dlq = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["MessageRetentionPeriod"])
    return QueueRetention(queue_s, int(dlq["Attributes"]["MessageRetentionPeriod"]))
