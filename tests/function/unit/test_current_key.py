"""CurrentKey when SSM or KMS fail: a warm container keeps its key, a cold one fails."""

from __future__ import annotations

import io
import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from login_etl.config import Settings
from login_etl.domain.masking import DeterministicMasker
from login_etl.runtime import CurrentKey

KEYS = {"wrapped-1": bytes(range(32)), "wrapped-2": bytes(range(1, 33))}
MAX_AGE = 300
SETTINGS = Settings.from_env(
    {
        "DATABASE_URL": "postgresql://u@h/db",
        "DATA_KEY_PARAMETER": "/login-etl/data-key",
        "DATA_KEY_MAX_AGE_SECONDS": str(MAX_AGE),
    }
)


class FakeAws:
    """The parameter's value and the KMS keys, either of which can be made to fail."""

    def __init__(self) -> None:
        self.parameter = "wrapped-1"
        self.ssm_down = False
        self.kms_down = False
        self.reads = 0
        self.decrypts = 0
        self.now = 1000.0

    def read(self) -> str:
        self.reads += 1
        if self.ssm_down:
            raise EndpointConnectionError(endpoint_url="https://ssm")
        return self.parameter

    def decrypt(self, ciphertext: str) -> bytes:
        self.decrypts += 1
        if self.kms_down or ciphertext not in KEYS:
            error = {"Error": {"Code": "InvalidCiphertextException", "Message": ciphertext}}
            raise ClientError(error, "Decrypt")  # type: ignore[arg-type]
        return KEYS[ciphertext]

    def key(self) -> CurrentKey:
        return CurrentKey(
            SETTINGS, read_ciphertext=self.read, decrypt=self.decrypt, clock=self.clock
        )

    def clock(self) -> float:
        return self.now


def key_id(name: str) -> int:
    return DeterministicMasker(KEYS[name]).key_id


def test_a_cold_container_with_ssm_down_fails() -> None:
    aws = FakeAws()
    aws.ssm_down = True
    with pytest.raises(EndpointConnectionError):
        aws.key().current()


def test_a_cold_container_with_kms_down_fails() -> None:
    aws = FakeAws()
    aws.kms_down = True
    with pytest.raises(ClientError):
        aws.key().current()


def test_a_warm_container_keeps_its_key_through_an_ssm_outage(function_logs: io.StringIO) -> None:
    aws = FakeAws()
    current = aws.key()
    held = current.current()
    aws.ssm_down = True

    assert current.current() == held  # the failed refresh: the held key, logged and counted
    aws.now += MAX_AGE - 1
    assert current.current() == held
    assert aws.reads == 2  # no new attempt before another max age: no timeouts per invocation
    aws.now += 2
    assert current.current() == held
    assert aws.reads == 3

    aws.ssm_down = False
    aws.parameter = "wrapped-2"  # rotated meanwhile
    aws.now += MAX_AGE
    assert current.current().key_id == key_id("wrapped-2")

    warnings = [json.loads(line) for line in function_logs.getvalue().splitlines()]
    assert [w["error_code"] for w in warnings] == ["EndpointConnectionError"] * 2
    assert {w["held_key_id"] for w in warnings} == {f"{key_id('wrapped-1'):08x}"}
    text = function_logs.getvalue()
    for secret in KEYS.values():
        assert secret.hex() not in text
        assert repr(secret) not in text


def test_a_new_ciphertext_kms_refuses_keeps_the_old_key_and_is_retried(
    function_logs: io.StringIO,
) -> None:
    aws = FakeAws()
    current = aws.key()
    held = current.current()
    aws.parameter = "wrapped-2"
    aws.kms_down = True

    assert current.current() == held
    assert aws.decrypts == 2
    assert json.loads(function_logs.getvalue())["error_code"] == "InvalidCiphertextException"
    assert "wrapped-2" not in function_logs.getvalue()  # not even the ciphertext

    aws.kms_down = False
    aws.now += MAX_AGE
    assert current.current().key_id == key_id("wrapped-2")


def test_a_bug_is_not_mistaken_for_an_outage() -> None:
    aws = FakeAws()
    calls = iter([KEYS["wrapped-1"]])

    def decrypt(ciphertext: str) -> bytes:
        return next(calls)  # StopIteration on the second call: a bug, not an outage

    current = CurrentKey(SETTINGS, read_ciphertext=aws.read, decrypt=decrypt, clock=aws.clock)
    current.current()
    aws.parameter = "wrapped-2"
    with pytest.raises(StopIteration):
        current.current()


def test_after_a_rotation_a_value_remembered_under_the_old_key_gets_the_new_keys_token() -> None:
    """Tokens are remembered per key: the old key's memory never answers for the new key."""
    aws = FakeAws()
    current = aws.key()
    values = ["199.172.111.135", "593-47-5928"]
    before = dict(current.tokens_of()(values))
    aws.parameter = "wrapped-2"
    aws.now += MAX_AGE + 1

    after = current.tokens_of()(values)

    new = DeterministicMasker(KEYS["wrapped-2"])
    assert {v: after[v] for v in values} == {v: new.mask(v) for v in values}
    assert before == {v: DeterministicMasker(KEYS["wrapped-1"]).mask(v) for v in values}
