"""The local stack's SQS loses nothing when several clients use one queue at once.

moto's SQS backend is not thread-safe and its server answers each request on a thread of its
own: a ``DeleteMessage`` rebuilds the queue's message list from a copy, so a message sent (or
moved) meanwhile vanished. With the event source mapping emulation and the scheduled drain on
one queue, 13 to 621 of ~3,000 valid messages were lost per run. ``moto_launcher`` serialises
the backend's calls; this test sends while two consumers receive and delete, on the launcher's
server, and requires every message to arrive exactly once and nothing to remain.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest

from login_etl_local.moto_server import MotoServer
from login_etl_local.stack_record import DUMMY_CREDENTIALS, REGION

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MESSAGES = 1_500
QUEUED_FIRST = 1_000  # a deep queue: each delete then rebuilds a long list, a wide race window
CONSUMERS = 2


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    server = MotoServer.start()
    yield server
    server.stop()


def client(server: MotoServer) -> SQSClient:
    """One client per thread: each has its own connections, so moto serves them concurrently."""
    return boto3.session.Session().client(
        "sqs",
        endpoint_url=server.endpoint_url,
        region_name=REGION,
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def test_two_consumers_and_a_producer_on_one_queue_lose_nothing(moto: MotoServer) -> None:
    # A long visibility timeout: a message is received once unless something resurrects it.
    queue_url = client(moto).create_queue(
        QueueName="race", Attributes={"VisibilityTimeout": "900"}
    )["QueueUrl"]
    sent = [f"message {i}" for i in range(MESSAGES)]
    received: list[list[str]] = [[] for _ in range(CONSUMERS)]
    producing = threading.Event()
    producing.set()
    errors: list[BaseException] = []

    def produce(first: int, end: int) -> None:
        sqs = client(moto)
        try:
            for start in range(first, end, 10):
                entries = [
                    {"Id": str(n), "MessageBody": body}
                    for n, body in enumerate(sent[start : start + 10])
                ]
                response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
                assert not response.get("Failed")
        except BaseException as error:
            errors.append(error)
        finally:
            producing.clear()

    def consume(mine: list[str]) -> None:
        sqs = client(moto)
        try:
            while True:
                still_producing = producing.is_set()  # read before: then an empty queue is final
                messages = sqs.receive_message(
                    QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                ).get("Messages", [])
                if not messages and not still_producing:
                    return
                mine += [m["Body"] for m in messages]
                if messages:
                    sqs.delete_message_batch(
                        QueueUrl=queue_url,
                        Entries=[
                            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                            for n, m in enumerate(messages)
                        ],
                    )
        except BaseException as error:
            errors.append(error)

    produce(0, QUEUED_FIRST)
    producing.set()
    threads = [threading.Thread(target=produce, args=(QUEUED_FIRST, MESSAGES))]
    threads += [threading.Thread(target=consume, args=(mine,)) for mine in received]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    everything = [body for mine in received for body in mine]
    lost = set(sent) - set(everything)
    assert not lost, f"{len(lost)} of {MESSAGES} messages vanished"
    assert len(everything) == MESSAGES  # none received twice
    left = client(moto).get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert left == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }
