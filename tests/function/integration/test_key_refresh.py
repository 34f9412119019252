"""SSM or KMS failing under a warm container (over HTTP, moto): it keeps masking with its key."""

from __future__ import annotations

import base64
import io
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pg8000.native
import pytest
from botocore.exceptions import ClientError

from login_etl.adapters import aws
from login_etl.config import KMS_ENCRYPTION_CONTEXT
from login_etl.domain.masking import token_key_id
from login_etl.handler import lambda_handler
from login_etl.runtime import reset_runtime
from login_etl_cli.commands.common import key_store
from login_etl_cli.keys import KeyStore
from login_etl_cli.seeding import send_bodies
from login_etl_local.event_source_mapping import LocalContext
from login_etl_local.provisioning import Provisioned
from login_etl_local.stack_record import patched_environ
from tests.sqs_helpers import receive_event

REFRESH_FAILED = "data key refresh failed: masking with the key already held"


def login(user: str) -> str:
    return json.dumps(
        {
            "user_id": user,
            "app_version": "2.3.0",
            "device_type": "android",
            "ip": "199.172.111.135",
            "locale": "RU",
            "device_id": "593-47-5928",
        }
    )


@pytest.fixture
def keys(queue: Provisioned) -> Iterator[KeyStore]:
    """A data key of this test's own, re-read on every invocation (max age 0)."""
    prefix = f"/login-etl-test-{uuid.uuid4().hex[:8]}"
    env = {
        "DATA_KEY_PARAMETER": f"{prefix}/data-key",
        "DATA_KEYRING_PATH": f"{prefix}/data-keys",
        "DATA_KEY_MAX_AGE_SECONDS": "0",
    }
    with patched_environ(env):
        store = key_store(queue.kms_key_id)
        store.init()
        reset_runtime()
        yield store
    reset_runtime()


def deliver(queue: Provisioned, user: str) -> dict[str, Any]:
    send_bodies(boto3.client("sqs"), queue.queue_url, [login(user)])
    response: dict[str, Any] = lambda_handler(receive_event(queue, 1), LocalContext())
    return response


def key_ids_of(db: pg8000.native.Connection, user: str) -> set[int]:
    rows = db.run("SELECT masked_ip, masked_device_id FROM user_logins WHERE user_id = :u", u=user)
    assert rows, f"no row for {user}"
    return {token_key_id(token) for row in rows for token in row}


def plaintext_key() -> bytes:
    ssm, kms = boto3.client("ssm"), boto3.client("kms")
    wrapped = ssm.get_parameter(Name=os.environ["DATA_KEY_PARAMETER"])["Parameter"]["Value"]
    blob = base64.b64decode(wrapped)
    return kms.decrypt(CiphertextBlob=blob, EncryptionContext=KMS_ENCRYPTION_CONTEXT)["Plaintext"]


def refresh_failures(logs: str, stdout: str) -> tuple[list[str], float]:
    """The error codes of the refresh warnings, and the DataKeyRefreshFailed metric's sum."""
    codes = [
        line["error_code"]
        for line in map(json.loads, logs.splitlines())
        if line["message"] == REFRESH_FAILED
    ]
    emf = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"_aws"')]
    return codes, sum(sum(line.get("DataKeyRefreshFailed", [])) for line in emf)


def assert_no_key_material(text: str, key: bytes) -> None:
    for form in (
        key.hex(),
        base64.b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode(),
        base64.urlsafe_b64encode(key[:16]).decode().rstrip("="),
        base64.urlsafe_b64encode(key[16:]).decode().rstrip("="),
    ):
        assert form not in text


def test_a_warm_container_keeps_writing_when_ssm_fails_and_a_cold_one_fails(
    queue: Provisioned,
    db: pg8000.native.Connection,
    keys: KeyStore,
    function_logs: io.StringIO,
    capfd: pytest.CaptureFixture[str],
) -> None:
    held, _ = keys.init()
    key = plaintext_key()
    assert deliver(queue, "before") == {"batchItemFailures": []}
    boto3.client("ssm").delete_parameter(Name=os.environ["DATA_KEY_PARAMETER"])  # SSM fails
    capfd.readouterr()

    # max age 0: each invocation is past it and re-reads the parameter, which fails.
    assert deliver(queue, "during-1") == {"batchItemFailures": []}
    assert deliver(queue, "during-2") == {"batchItemFailures": []}

    assert key_ids_of(db, "during-1") == key_ids_of(db, "during-2") == {held}
    out = capfd.readouterr().out
    codes, metric = refresh_failures(function_logs.getvalue(), out)
    assert codes == ["ParameterNotFound"] * 2
    assert metric == 2
    assert_no_key_material(function_logs.getvalue() + out, key)

    reset_runtime()  # a cold container: no key to fall back on
    send_bodies(boto3.client("sqs"), queue.queue_url, [login("cold")])
    with pytest.raises(ClientError, match="ParameterNotFound"):
        lambda_handler(receive_event(queue, 1), LocalContext())
    assert db.run("SELECT count(*) FROM user_logins WHERE user_id = 'cold'") == [[0]]


def test_a_new_key_kms_cannot_decrypt_keeps_the_old_one_until_it_can(
    queue: Provisioned, db: pg8000.native.Connection, keys: KeyStore, function_logs: io.StringIO
) -> None:
    old, _ = keys.init()
    key = plaintext_key()
    assert deliver(queue, "before") == {"batchItemFailures": []}

    # A rotation whose ciphertext KMS refuses (corrupted), then KMS unreachable.
    ssm, name = boto3.client("ssm"), os.environ["DATA_KEY_PARAMETER"]
    wrapped = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    garbage = base64.b64encode(bytes(range(200))).decode()
    ssm.put_parameter(Name=name, Value=garbage, Overwrite=True)
    assert deliver(queue, "refused") == {"batchItemFailures": []}
    ssm.put_parameter(Name=name, Value=wrapped, Overwrite=True)  # so that `keys` can rotate
    _, new = keys.rotate()
    aws._client.cache_clear()
    try:
        with patched_environ({"AWS_ENDPOINT_URL_KMS": "http://127.0.0.1:9"}):
            assert deliver(queue, "unreachable") == {"batchItemFailures": []}
    finally:
        aws._client.cache_clear()

    assert key_ids_of(db, "refused") == key_ids_of(db, "unreachable") == {old}
    codes = refresh_failures(function_logs.getvalue(), "")[0]
    assert len(codes) == 2
    assert codes[1] == "EndpointConnectionError"
    assert_no_key_material(function_logs.getvalue(), key)
    assert garbage not in function_logs.getvalue()

    # KMS is back: the next refresh (max age 0: this invocation) picks the new key up.
    assert deliver(queue, "after") == {"batchItemFailures": []}
    assert key_ids_of(db, "after") == {new}
