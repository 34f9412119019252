"""DB_AUTH=iam: a fresh RDS token instead of a stored password, as far as the emulator goes.

The token is botocore's local SigV4 presign (no call to AWS), so its shape, its target and its
freshness are tested here; that RDS accepts it can only be tested against RDS itself.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest

from login_etl.config import ConfigurationError, Settings
from login_etl.runtime import connection_params_source
from login_etl_local.stack_record import LocalStack


def iam_settings(stack: LocalStack) -> Settings:
    return replace(Settings.from_env(), db_auth="iam", db_sslmode="verify-full")


def test_each_connect_gets_a_token_for_its_host_port_and_user(stack: LocalStack) -> None:
    source = connection_params_source(iam_settings(stack))

    params = source.params()

    assert params.sslmode == "verify-full"
    target, _, query = params.password.partition("/?")
    assert target == f"{params.host}:{params.port}"
    fields = parse_qs(query)
    assert fields["Action"] == ["connect"]
    assert fields["DBUser"] == [params.user]
    assert fields["X-Amz-Expires"] == ["900"]
    assert len(fields["X-Amz-Signature"][0]) == 64
    assert urlsplit(f"https://{params.password}").hostname == params.host


@pytest.mark.parametrize("sslmode", ["disable", "require"])
def test_iam_authentication_refuses_to_run_without_a_verified_server(
    stack: LocalStack, sslmode: str
) -> None:
    """The token is the password for 15 minutes: an unverified server could be anyone."""
    with pytest.raises(ConfigurationError, match="DB_AUTH=iam needs a verified server"):
        Settings.from_env({**_env(stack), "DB_AUTH": "iam", "DB_SSLMODE": sslmode})


def test_the_token_is_never_logged_even_at_debug(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG):
            token = connection_params_source(iam_settings(stack)).params().password
    finally:
        root.setLevel(level)
    signature = parse_qs(token.partition("/?")[2])["X-Amz-Signature"][0]
    assert all(signature not in record.getMessage() for record in caplog.records)


def _env(stack: LocalStack) -> dict[str, str]:
    return {**stack.environment(), "DATA_KEY_CIPHERTEXT": "-"}
