"""Small helpers for tests that go through a real (emulated) SQS queue."""

from __future__ import annotations

import base64
from typing import Any

import boto3
from cryptography.fernet import Fernet

from login_etl.adapters.config_stores import read_parameter
from login_etl.config import KMS_ENCRYPTION_CONTEXT
from login_etl_cli.sqs_event import lambda_record
from login_etl_local.provisioning import Provisioned


def receive_event(queue: Provisioned, count: int) -> dict[str, Any]:
    """Receive ``count`` messages and wrap them as the SQS event Lambda would pass."""
    sqs = boto3.client("sqs")
    messages: list[Any] = []
    while len(messages) < count:
        messages += sqs.receive_message(
            QueueUrl=queue.queue_url,
            MaxNumberOfMessages=min(10, count - len(messages)),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=60,
        ).get("Messages", [])
    return {"Records": [lambda_record(m, queue.queue_arn, "us-east-1") for m in messages]}


def independent_fernet(queue: Provisioned) -> Fernet:
    """Fernet with the data key straight from KMS: an operator's view, not the function's."""
    blob = base64.b64decode(read_parameter(boto3.client("ssm"), queue.data_key_parameter))
    key = boto3.client("kms").decrypt(CiphertextBlob=blob, EncryptionContext=KMS_ENCRYPTION_CONTEXT)
    return Fernet(base64.urlsafe_b64encode(key["Plaintext"]))


def dlq_bodies(queue: Provisioned) -> list[str]:
    """Every body in the queue's DLQ (consumed)."""
    sqs = boto3.client("sqs")
    bodies: list[str] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=queue.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=60
        ).get("Messages", [])
        if not got:
            return bodies
        bodies += [m["Body"] for m in got]
