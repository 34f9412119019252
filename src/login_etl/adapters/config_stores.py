"""Reading settings that live in SSM Parameter Store and Secrets Manager."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_ssm import SSMClient


def read_parameter(ssm: SSMClient, name: str) -> str:
    """The value of an SSM parameter (SecureString decrypted)."""
    return ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]


class CachedParameter:
    """An SSM parameter's value, read again once it is older than ``max_age_s`` (0: every time).

    What Powertools' ``SSMProvider(...).get(name, max_age=max_age_s)`` does (one
    ``GetParameter``, ``read_parameter``; the value kept ``max_age_s`` from when it came back,
    nothing kept at 0), without importing ``aws_lambda_powertools.utilities.parameters``, which
    imports boto3 and with it a large part of the cold start (docs/development.md, "Runtime
    dependencies"). Errors are botocore's own (``ClientError``, ``BotoCoreError``), not wrapped.
    """

    def __init__(
        self,
        ssm: SSMClient,
        name: str,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ssm = ssm
        self._name = name
        self._max_age_s = max_age_s
        self._clock = clock
        self._value: str | None = None
        self._expires = 0.0

    def get(self) -> str:
        """The value, from SSM if the one held is older than the max age."""
        if self._value is not None and self._clock() <= self._expires:
            return self._value
        value = read_parameter(self._ssm, self._name)
        if self._max_age_s > 0:
            self._value, self._expires = value, self._clock() + self._max_age_s
        return value


def read_json_secret(secretsmanager: SecretsManagerClient, secret_id: str) -> dict[str, Any]:
    """A Secrets Manager secret whose string is a JSON object."""
    secret: Any = json.loads(secretsmanager.get_secret_value(SecretId=secret_id)["SecretString"])
    if not isinstance(secret, dict):
        raise TypeError("the secret is not a JSON object")
    return secret
