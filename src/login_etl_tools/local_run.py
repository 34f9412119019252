"""``login-etl run``: deliver the queue to the real handler locally and summarise what happened."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pg8000.native

from login_etl.adapters.postgres_connection import connect
from login_etl.adapters.postgres_schema import TABLE
from login_etl.adapters.postgres_store import table_exists
from login_etl.config import Settings
from login_etl.domain.errors import InvalidMessageError
from login_etl.domain.validation import parse_login
from login_etl.runtime import connection_params
from login_etl_tools.event_source_mapping import DeliveryStats, run_event_source_mapping
from login_etl_tools.schedule import run_schedule

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_sqs import SQSClient


@dataclass
class RunSummary:
    """What a local run did, for the terminal."""

    sent: int
    delivery: DeliveryStats
    rows_before: int
    rows_after: int
    dlq_messages: int
    dlq_reasons: Counter[str] = field(default_factory=Counter)
    sample_rows: list[list[Any]] = field(default_factory=list)


def deliver_and_summarise(
    sqs: SQSClient,
    queue_url: str,
    dlq_url: str,
    sent: int,
    *,
    batch_size: int,
    mode: str = "sqs",
    on_batch: Callable[[DeliveryStats], None] | None = None,
) -> RunSummary:
    """Deliver the queue to the handler until it is empty, then count.

    ``mode`` is the trigger: ``sqs`` emulates the event source mapping (batches of
    ``batch_size``), ``schedule`` the EventBridge rule (the handler drains the queue itself).
    """
    from login_etl.handler import lambda_handler  # noqa: PLC0415 - after logging env is set

    with connect(connection_params(Settings.from_env())) as conn:
        before = _count_rows(conn)
        if mode == "schedule":
            stats = run_schedule(sqs, queue_url, lambda_handler, on_batch=on_batch)
        else:
            stats = run_event_source_mapping(
                sqs, queue_url, lambda_handler, batch_size=batch_size, on_batch=on_batch
            )
        after = _count_rows(conn)
        sample = conn.run(
            "SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version,"
            " create_date FROM user_logins ORDER BY masked_device_id LIMIT 3"
        )
    dlq_count, reasons = dlq_reasons(sqs, dlq_url)
    return RunSummary(sent, stats, before, after, dlq_count, reasons, sample)


def dlq_reasons(sqs: SQSClient, dlq_url: str) -> tuple[int, Counter[str]]:
    """Count DLQ messages by why they fail validation, peeking without consuming them."""
    count = int(
        sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    reasons: Counter[str] = Counter()
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
                reasons[_why(message["Body"])] += 1
    finally:
        for start in range(0, len(held), 10):
            sqs.change_message_visibility_batch(
                QueueUrl=dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for i, h in enumerate(held[start : start + 10])
                ],
            )
    return count, reasons


def _why(body: str) -> str:
    try:
        parse_login(body)
    except InvalidMessageError as error:
        return f"{error.reason.value}: {error.detail}"
    return "valid now (it failed for another reason: see the function's logs)"


def _count_rows(conn: pg8000.native.Connection) -> int:
    if not table_exists(conn, TABLE):
        return 0
    return int(conn.run(f"SELECT count(*) FROM {TABLE}")[0][0])  # noqa: S608 - a constant
