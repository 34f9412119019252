"""Creates what the function needs on an AWS-compatible endpoint: queues, KMS key, data key.

Idempotent: run it again and it reuses the queue, the key (by alias) and, above all, the stored
data key, because a new data key would make every existing masked value incomparable.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import boto3

from login_etl.config import DEFAULT_KEYRING_PATH
from login_etl_cli.keys import DATA_KEY_PARAMETER, KeyStore
from login_etl_cli.local_stack import Provisioned

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType
    from mypy_boto3_ssm import SSMClient

QUEUE_NAME = "login-queue"
KEY_ALIAS = "alias/login-etl"
DLQ_RETENTION_SECONDS = 14 * 24 * 3600

__all__ = ["KEY_ALIAS", "QUEUE_NAME", "Provisioned", "provision", "provision_here"]


def provision(
    sqs: SQSClient,
    kms: KMSClient,
    ssm: SSMClient,
    *,
    queue_name: str = QUEUE_NAME,
    max_receive_count: int = 5,
    visibility_timeout_s: int = 30,
    data_key_parameter: str = DATA_KEY_PARAMETER,
    keyring_path: str = DEFAULT_KEYRING_PATH,
) -> Provisioned:
    """Create (or find) the queue and its DLQ, the KMS key and the encrypted data key."""
    fifo = queue_name.endswith(".fifo")
    dlq_name = queue_name.removesuffix(".fifo") + "-dlq" + (".fifo" if fifo else "")
    common: dict[QueueAttributeNameType, str] = {"SqsManagedSseEnabled": "true"}
    if fifo:
        common["FifoQueue"] = "true"
    dlq_url = sqs.create_queue(
        QueueName=dlq_name,
        Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS), **common},
    )["QueueUrl"]
    dlq_arn = _arn(sqs, dlq_url)
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
    queue_url = sqs.create_queue(
        QueueName=queue_name,
        Attributes={
            "RedrivePolicy": json.dumps(redrive),
            "VisibilityTimeout": str(visibility_timeout_s),
            **common,
        },
    )["QueueUrl"]
    key_id = _key_by_alias(kms)
    KeyStore(
        ssm,
        kms,
        current_parameter=data_key_parameter,
        keyring_path=keyring_path,
        kms_key=key_id,
    ).init()
    return Provisioned(queue_url, _arn(sqs, queue_url), dlq_url, key_id, data_key_parameter)


def _arn(sqs: SQSClient, queue_url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]


def _key_by_alias(kms: KMSClient) -> str:
    for alias in kms.list_aliases()["Aliases"]:
        if alias.get("AliasName") == KEY_ALIAS and alias.get("TargetKeyId"):
            return alias["TargetKeyId"]
    key_id = kms.create_key(Description="login-etl: encrypts the PII masking data key")[
        "KeyMetadata"
    ]["KeyId"]
    kms.enable_key_rotation(KeyId=key_id)
    kms.create_alias(AliasName=KEY_ALIAS, TargetKeyId=key_id)
    return key_id


def provision_here(*, max_receive_count: int, visibility_timeout_s: int) -> Provisioned:
    """``provision`` through boto3's default clients: the environment's endpoint and account."""
    return provision(
        boto3.client("sqs"),
        boto3.client("kms"),
        boto3.client("ssm"),
        max_receive_count=max_receive_count,
        visibility_timeout_s=visibility_timeout_s,
    )
