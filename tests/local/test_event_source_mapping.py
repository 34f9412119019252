"""The event source mapping's emulation, as ``login-etl run`` drives it: what it holds, and when."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from login_etl_cli.seeding import send_bodies
from login_etl_local.commands.run import failing_note
from login_etl_local.event_source_mapping import run_event_source_mapping
from login_etl_local.provisioning import Provisioned


def queue_counts(queue: Provisioned) -> tuple[int, int]:
    """(visible, in flight) on the login queue."""
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def test_an_interrupted_delivery_gives_back_what_it_held_at_once(queue: Provisioned) -> None:
    sqs = boto3.client("sqs")
    send_bodies(sqs, queue.queue_url, [json.dumps({"n": n}) for n in range(25)])

    def interrupted(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise KeyboardInterrupt  # Ctrl-C while the function works on its batch

    with pytest.raises(KeyboardInterrupt):
        run_event_source_mapping(
            sqs, queue.queue_url, interrupted, batch_size=20, visibility_timeout_s=60
        )

    # Visible now, not 60 s from now: the next `run --no-seed` starts on them at once.
    assert queue_counts(queue) == (25, 0)


def test_failing_counts_the_failing_messages_not_the_queue(queue: Provisioned) -> None:
    sqs = boto3.client("sqs")
    bodies = [json.dumps({"n": n, "bad": n % 7 == 0}) for n in range(20)]  # 3 bad of 20
    send_bodies(sqs, queue.queue_url, bodies)

    def three_fail(event: dict[str, Any], context: Any) -> dict[str, Any]:
        bad = [r["messageId"] for r in event["Records"] if json.loads(r["body"])["bad"]]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in bad]}

    notes: list[str] = []
    stats = run_event_source_mapping(
        sqs,
        queue.queue_url,
        three_fail,
        batch_size=20,
        retry_after_s=0,
        on_batch=lambda s: notes.append(failing_note(s)),
    )

    assert notes[0] == "3 failing, being retried"
    assert set(notes) <= {"3 failing, being retried", ""}
    assert notes[-1] == ""  # dead-lettered after maxReceiveCount: settled, not failing
    assert stats.failing == 0
    assert stats.delivered == 17 + 3 * 5  # the bad ones: maxReceiveCount deliveries each
