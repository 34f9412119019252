"""Fixtures of the unit tests that talk to AWS in-process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from login_etl.adapters import aws


@pytest.fixture
def in_process_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """AWS in this process (moto), with test credentials and no endpoint of a local stack;
    the function's clients are made afresh inside it."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "SessionTokenOfTheTest",  # no log line may show it
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    aws._client.cache_clear()
    with mock_aws():
        yield
    aws._client.cache_clear()
