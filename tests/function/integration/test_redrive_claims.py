"""Signed redrive claims end to end: the operator's copies dedupe, nobody else's do."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pg8000.native
import pytest

from login_etl.domain.redrive_claim import CLAIM_ATTRIBUTE
from login_etl.handler import lambda_handler
from login_etl.runtime import reset_runtime
from login_etl_cli.commands.common import key_store
from login_etl_cli.keys import KeyStore
from login_etl_cli.redrive import redrive
from login_etl_cli.seeding import send_bodies
from login_etl_local.event_source_mapping import LocalContext, run_event_source_mapping
from login_etl_local.provisioning import Provisioned
from login_etl_local.stack_record import patched_environ
from tests.sqs_helpers import receive_event

SCHEDULED = json.loads(
    (Path(__file__).resolve().parents[3] / "events" / "scheduled.json").read_text()
)


def login(user: str) -> str:
    return json.dumps(
        {
            "user_id": user,
            "app_version": "2.3.0",
            "device_type": "android",
            "ip": "199.172.111.135",
            "locale": "RU",
            "device_id": "593-47-5928",
        }
    )


def redrive_now(queue: Provisioned) -> int:
    signer, verify = key_store().redrive_claims()
    sqs = boto3.client("sqs")
    return redrive(sqs, queue.dlq_url, queue.queue_url, signer=signer, verify=verify, hold_s=1)


def users(db: pg8000.native.Connection) -> list[str]:
    return [row[0] for row in db.run("SELECT user_id FROM user_logins ORDER BY 1")]


def test_a_copy_dead_lettered_again_keeps_its_original_id(
    queue: Provisioned, db: pg8000.native.Connection
) -> None:
    sqs = boto3.client("sqs")
    (original,) = send_bodies(sqs, queue.dlq_url, [login("u")])
    assert redrive_now(queue) == 1
    # The copy fails again (an outage) and is dead-lettered, while a twin of it is still on
    # the queue: the second redrive must carry the claim forward, not re-sign the new id.
    copy = sqs.receive_message(
        QueueUrl=queue.queue_url, MessageAttributeNames=["All"], VisibilityTimeout=0
    )["Messages"][0]
    sqs.send_message(
        QueueUrl=queue.dlq_url,
        MessageBody=copy["Body"],
        MessageAttributes=copy["MessageAttributes"],
    )
    assert redrive_now(queue) == 1

    stats = run_event_source_mapping(sqs, queue.queue_url, lambda_handler)

    assert stats.delivered == 2
    assert stats.reported_failures == 0
    assert users(db) == ["u"]
    assert db.run("SELECT message_id FROM login_etl_processed_messages") == [[original]]


def test_a_genuine_claim_lifted_onto_another_body_is_refused(
    queue: Provisioned, db: pg8000.native.Connection
) -> None:
    sqs = boto3.client("sqs")
    send_bodies(sqs, queue.dlq_url, [login("victim")])
    redrive_now(queue)
    # A producer that can read the queue copies the genuine claim onto its own message.
    genuine = sqs.receive_message(
        QueueUrl=queue.queue_url, MessageAttributeNames=["All"], VisibilityTimeout=0
    )["Messages"][0]["MessageAttributes"][CLAIM_ATTRIBUTE]
    assert genuine["StringValue"].startswith("v2:")
    (lifted,) = [
        sqs.send_message(
            QueueUrl=queue.queue_url,
            MessageBody=login("intruder"),
            MessageAttributes={CLAIM_ATTRIBUTE: genuine},
        )["MessageId"]
    ]

    response = lambda_handler(receive_event(queue, 2), LocalContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": lifted}]}
    assert users(db) == ["victim"]


def test_the_scheduled_drain_checks_claims_too(
    queue: Provisioned, db: pg8000.native.Connection
) -> None:
    sqs = boto3.client("sqs")
    (original,) = send_bodies(sqs, queue.dlq_url, [login("genuine")])
    redrive_now(queue)
    copy = sqs.receive_message(
        QueueUrl=queue.queue_url, MessageAttributeNames=["All"], VisibilityTimeout=0
    )["Messages"][0]
    # An interrupted redrive's second copy, and a producer's message naming the original.
    sqs.send_message(
        QueueUrl=queue.queue_url,
        MessageBody=copy["Body"],
        MessageAttributes=copy["MessageAttributes"],
    )
    sqs.send_message(
        QueueUrl=queue.queue_url,
        MessageBody=login("intruder"),
        MessageAttributes={CLAIM_ATTRIBUTE: {"DataType": "String", "StringValue": original}},
    )

    with patched_environ({"DRAIN_WAIT_SECONDS": "1"}):
        summary = lambda_handler(SCHEDULED, LocalContext())

    assert (summary["received"], summary["written"], summary["duplicates"]) == (3, 1, 1)
    assert summary["failed"] == 1
    assert users(db) == ["genuine"]


@pytest.fixture
def slow_rotation(queue: Provisioned) -> Iterator[KeyStore]:
    """A key and keyring of this test's own; containers re-read the key only every hour."""
    prefix = f"/login-etl-test-{uuid.uuid4().hex[:8]}"
    env = {
        "DATA_KEY_PARAMETER": f"{prefix}/data-key",
        "DATA_KEYRING_PATH": f"{prefix}/data-keys",
        "DATA_KEY_MAX_AGE_SECONDS": "3600",
    }
    with patched_environ(env):
        store = key_store(queue.kms_key_id)
        store.init()
        reset_runtime()
        yield store
    reset_runtime()


def test_a_claim_under_a_key_the_container_lacks_fails_until_it_has_it(
    queue: Provisioned, db: pg8000.native.Connection, slow_rotation: KeyStore
) -> None:
    sqs = boto3.client("sqs")
    send_bodies(sqs, queue.queue_url, [login("before")])
    lambda_handler(receive_event(queue, 1), LocalContext())  # this container holds key 1
    slow_rotation.rotate()
    send_bodies(sqs, queue.dlq_url, [login("after")])
    redrive_now(queue)  # signed with key 2
    event = receive_event(queue, 1)

    refused = lambda_handler(event, LocalContext())

    assert [item["itemIdentifier"] for item in refused["batchItemFailures"]] == [
        event["Records"][0]["messageId"]
    ]
    reset_runtime()  # a container that has picked up the rotation
    assert lambda_handler(event, LocalContext()) == {"batchItemFailures": []}
    assert users(db) == ["after", "before"]
