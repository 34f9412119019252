"""What is in the dead-letter queue, and why each message fails validation today.

``login-etl dlq show`` lists it; ``login-etl run`` (``login_etl_local.local_run``) counts this
run's dead letters with the same peek. Peeking makes each message invisible for a moment and
then visible again: nothing is consumed.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from login_etl.domain.errors import InvalidMessageError
from login_etl.domain.validation import parse_login

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

VALID_NOW = "valid now (it failed for another reason: see the function's logs)"


def peek_dead_letters(sqs: SQSClient, dlq_url: str) -> dict[str, str]:
    """Every DLQ message's id and why it fails validation, peeking without consuming them."""
    count = int(
        sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    reasons: dict[str, str] = {}
    held: list[str] = []  # receipt handles, made visible again below
    try:
        while len(held) < count:
            messages = sqs.receive_message(
                QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=30, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                held.append(message["ReceiptHandle"])
                reasons[message["MessageId"]] = invalid_reason(message["Body"]) or VALID_NOW
    finally:
        for start in range(0, len(held), 10):
            sqs.change_message_visibility_batch(
                QueueUrl=dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for i, h in enumerate(held[start : start + 10])
                ],
            )
    return reasons


def dlq_reasons(sqs: SQSClient, dlq_url: str) -> tuple[int, Counter[str]]:
    """(messages in the DLQ, how many fail validation for each reason)."""
    reasons = peek_dead_letters(sqs, dlq_url)
    return len(reasons), Counter(reasons.values())


def invalid_reason(body: str) -> str | None:
    """Why the body fails validation today, or None if it passes."""
    try:
        parse_login(body)
    except InvalidMessageError as error:
        return f"{error.reason.value}: {error.detail}"
    return None
