"""The event source mapping's emulation, as ``login-etl run`` drives it: what it holds, and when."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from login_etl_cli.seeding import send_bodies
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
