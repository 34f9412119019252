"""CachedParameter: the data key's SSM parameter, re-read once older than its max age."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError

from login_etl.adapters import aws
from login_etl.adapters.config_stores import CachedParameter

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

NAME = "/login-etl/data-key"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ssm(in_process_aws: None) -> SSMClient:
    """SSM in-process (moto), through the function's own client."""
    client = aws.ssm()
    client.put_parameter(Name=NAME, Value="wrapped-1", Type="String")
    return client


def rotate(ssm: SSMClient, value: str) -> None:
    ssm.put_parameter(Name=NAME, Value=value, Type="String", Overwrite=True)


def test_the_value_is_kept_for_its_max_age_then_read_again(ssm: SSMClient) -> None:
    clock = Clock()
    parameter = CachedParameter(ssm, NAME, 300, clock)
    assert parameter.get() == "wrapped-1"
    rotate(ssm, "wrapped-2")

    clock.now += 300
    assert parameter.get() == "wrapped-1"  # still within its max age
    clock.now += 0.001
    assert parameter.get() == "wrapped-2"


def test_max_age_zero_reads_every_time(ssm: SSMClient) -> None:
    parameter = CachedParameter(ssm, NAME, 0, Clock())
    assert parameter.get() == "wrapped-1"
    rotate(ssm, "wrapped-2")
    assert parameter.get() == "wrapped-2"


def test_a_failed_read_raises_botocores_own_error(ssm: SSMClient) -> None:
    """Not wrapped: ``runtime.REFRESH_ERRORS`` catches it and logs its error code."""
    clock = Clock()
    parameter = CachedParameter(ssm, NAME, 300, clock)
    parameter.get()
    ssm.delete_parameter(Name=NAME)
    clock.now += 301
    with pytest.raises(ClientError) as raised:
        parameter.get()
    assert raised.value.response["Error"]["Code"] == "ParameterNotFound"
