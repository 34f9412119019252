"""The scheduled trigger: the handler drains a real (emulated) SQS queue over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pg8000.native
import pytest

from login_etl.config import ConfigurationError
from login_etl.handler import UnsupportedEventError, lambda_handler
from login_etl.runtime import reset_runtime
from login_etl_cli.sample_data import generate_labelled
from login_etl_cli.seeding import send_bodies
from login_etl_local.event_source_mapping import LocalContext
from login_etl_local.provisioning import Provisioned, provision
from login_etl_local.stack_record import LocalStack, patched_environ
from tests.cli_helpers import HANG_GUARD_S
from tests.sqs_helpers import dlq_bodies

SCHEDULED = json.loads(
    (Path(__file__).resolve().parents[3] / "events" / "scheduled.json").read_text()
)


@pytest.fixture
def fast_queue(stack: LocalStack) -> Iterator[Provisioned]:
    """A queue with a 20 s visibility timeout and maxReceiveCount 1: one retry window.

    The visibility timeout must outlast the slowest round (receive, process, delete), or a
    valid message comes back before its delete: SQS then refuses the delete
    (ReceiptHandleIsInvalid) and counts one more receive towards the DLQ. 5 s was not enough
    with two CPU-bound processes beside the suite (26-68 refused deletes in each of three
    runs); 20 s is four times that, and maxReceiveCount 1 keeps the redrive to one window.
    """
    provisioned = provision(
        boto3.client("sqs"),
        boto3.client("kms"),
        boto3.client("ssm"),
        queue_name=f"drain-{uuid.uuid4().hex[:8]}",
        max_receive_count=1,
        visibility_timeout_s=20,
    )
    reset_runtime()
    with patched_environ({"QUEUE_URL": provisioned.queue_url, "DRAIN_WAIT_SECONDS": "1"}):
        yield provisioned
    reset_runtime()


def depth(queue_url: str) -> tuple[int, int]:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def test_scheduled_drains_write_every_valid_message_and_redrive_the_rest(
    fast_queue: Provisioned, db: pg8000.native.Connection
) -> None:
    labelled = generate_labelled(1_500, seed=11, malformed_ratio=0.03)
    malformed = [body for body, valid in labelled if not valid]
    send_bodies(boto3.client("sqs"), fast_queue.queue_url, [body for body, _ in labelled])

    responses: list[dict[str, Any]] = []
    # Until the queue is empty, however long this machine takes: the deadline only ends a hang.
    deadline = time.monotonic() + HANG_GUARD_S
    while depth(fast_queue.queue_url) != (0, 0) and time.monotonic() < deadline:
        responses.append(lambda_handler(SCHEDULED, LocalContext(timeout_s=120)))
        time.sleep(1)  # the schedule's next tick; failures come back after 20 s

    assert depth(fast_queue.queue_url) == (0, 0)
    assert responses[0]["stoppedBecause"] == "queue-empty"
    assert responses[0]["received"] >= 1_500
    assert sum(r["written"] for r in responses) == 1_500 - len(malformed)
    assert sum(r["deleteFailures"] for r in responses) == 0
    assert db.run("SELECT count(*) FROM user_logins") == [[1_500 - len(malformed)]]
    assert Counter(dlq_bodies(fast_queue)) == Counter(malformed)


def test_too_little_time_left_receives_nothing(
    fast_queue: Provisioned, db: pg8000.native.Connection
) -> None:
    send_bodies(boto3.client("sqs"), fast_queue.queue_url, [b for b, _ in generate_labelled(30)])

    response = lambda_handler(SCHEDULED, LocalContext(timeout_s=5))  # margin is 10 s

    assert response["stoppedBecause"] == "time-limit"
    assert response["received"] == 0
    assert depth(fast_queue.queue_url) == (30, 0)


def test_schedule_without_queue_url_says_what_to_set(stack: LocalStack) -> None:
    reset_runtime()
    with (
        patched_environ({"QUEUE_URL": ""}),
        pytest.raises(ConfigurationError, match="QUEUE_URL"),
    ):
        lambda_handler(SCHEDULED, LocalContext())
    reset_runtime()


def test_an_unknown_event_is_refused_naming_its_keys_only(stack: LocalStack) -> None:
    with pytest.raises(UnsupportedEventError) as raised:
        lambda_handler({"ip": "199.172.111.135", "detail-type": "Other"}, LocalContext())

    assert str(raised.value) == "unsupported event with keys <non-identifier key>, ip"
    assert "199.172.111.135" not in str(raised.value)
