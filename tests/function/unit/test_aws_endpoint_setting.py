"""AWS_ENDPOINT_URL: set, every client of the function uses it; empty, it means unset.

The template never sets it once deployed (an emulator such as LocalStack injects its own, and
AWS needs none); `sam local invoke` may still pass it empty. botocore skips an empty value, so
the function then talks to the region's real endpoints, as with no variable at all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from login_etl.adapters import aws

CLIENTS = {"sqs": aws.sqs, "kms": aws.kms, "ssm": aws.ssm, "secretsmanager": aws.secretsmanager}


@pytest.fixture
def fresh_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clients made under this test's environment (the adapter keeps one per service)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in [*(f"AWS_ENDPOINT_URL_{s.upper()}" for s in CLIENTS), "AWS_CONFIG_FILE"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")  # no endpoint_url from a profile
    aws._client.cache_clear()
    yield
    aws._client.cache_clear()


@pytest.mark.usefixtures("fresh_clients")
def test_an_empty_endpoint_setting_means_the_regions_own_endpoints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")

    endpoints = {service: make().meta.endpoint_url for service, make in CLIENTS.items()}

    assert endpoints == {s: f"https://{s}.us-east-1.amazonaws.com" for s in CLIENTS}


@pytest.mark.usefixtures("fresh_clients")
def test_a_set_endpoint_is_every_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://172.18.0.1:4566")

    endpoints = {service: make().meta.endpoint_url for service, make in CLIENTS.items()}

    assert set(endpoints.values()) == {"http://172.18.0.1:4566"}
