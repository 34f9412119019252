"""AWS clients with botocore's standard retry mode and bounded timeouts, made once.

Made by botocore itself, not ``boto3.client``: the clients are the same (boto3 only adds its
resources and S3 transfers, neither used here), and ``import boto3`` also imports s3transfer
and boto3's resource model, a large part of the cold start for nothing
(docs/development.md, "Runtime dependencies"). The standard configuration applies unchanged:
``AWS_ENDPOINT_URL`` (and per service), the region, the credential chain, config files.

Importing this module also makes botocore's DEBUG logging payload-free (``log_redaction``): every
AWS call of the function goes through a client made here, so no client exists before the filters.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.config import Config

from login_etl.adapters import log_redaction

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient

log_redaction.install()

# Standard mode retries throttling and transient errors with jittered backoff; bounded
# timeouts keep a hung dependency from eating the whole Lambda timeout.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=3,
    read_timeout=10,
)
# SQS long polling holds a ReceiveMessage open for up to 20 s: a longer read timeout.
SQS_CONFIG = CLIENT_CONFIG.merge(Config(read_timeout=25))


@cache
def _client(service: str) -> Any:
    config = SQS_CONFIG if service == "sqs" else CLIENT_CONFIG
    # A session of its own per client, as boto3.session.Session().client(...) made it.
    return botocore.session.get_session().create_client(service, config=config)


def kms() -> KMSClient:
    """The KMS client."""
    client: KMSClient = _client("kms")
    return client


def ssm() -> SSMClient:
    """The SSM client."""
    client: SSMClient = _client("ssm")
    return client


def secretsmanager() -> SecretsManagerClient:
    """The Secrets Manager client."""
    client: SecretsManagerClient = _client("secretsmanager")
    return client


def sqs() -> SQSClient:
    """The SQS client."""
    client: SQSClient = _client("sqs")
    return client


def rds() -> RDSClient:
    """The RDS client (only its local token signer is used: IAM database authentication)."""
    client: RDSClient = _client("rds")
    return client
