"""Reading settings that live in SSM Parameter Store and Secrets Manager."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_ssm import SSMClient


def read_parameter(ssm: SSMClient, name: str) -> str:
    """The value of an SSM parameter (SecureString decrypted)."""
    return ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]


def read_json_secret(secretsmanager: SecretsManagerClient, secret_id: str) -> dict[str, Any]:
    """A Secrets Manager secret whose string is a JSON object."""
    secret: Any = json.loads(secretsmanager.get_secret_value(SecretId=secret_id)["SecretString"])
    if not isinstance(secret, dict):
        raise TypeError("the secret is not a JSON object")
    return secret
