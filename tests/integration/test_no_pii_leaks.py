"""Everything the function emits while processing real data, searched for PII and key material.

Logs (at DEBUG, with ``POWERTOOLS_LOGGER_LOG_EVENT=true`` trying to make the logger print the
event), EMF metrics, the responses of both triggers, and the exceptions of failed invocations
(Postgres unreachable, a data key KMS refuses) are captured; no raw ``ip`` or ``device_id`` of
the input and no form of the data key may appear in any of it.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import traceback
from collections.abc import Iterator
from typing import Any

import boto3
import pg8000.native
import pytest

from login_etl.adapters.config_stores import read_parameter
from login_etl.config import KMS_ENCRYPTION_CONTEXT
from login_etl.handler import lambda_handler
from login_etl.observability import logger
from login_etl.runtime import reset_runtime
from login_etl_tools.event_source_mapping import LocalContext, run_event_source_mapping
from login_etl_tools.provisioning import Provisioned
from login_etl_tools.sample_data import generate_labelled
from login_etl_tools.schedule import run_schedule
from login_etl_tools.seeding import send_bodies
from login_etl_tools.stack import patched_environ
from tests.conftest import REAL_DATA
from tests.sqs_helpers import receive_event


@pytest.fixture
def loud(stack: object) -> Iterator[None]:
    """The most talkative configuration a careless operator could set."""
    logger.setLevel(logging.DEBUG)
    with patched_environ({"POWERTOOLS_LOGGER_LOG_EVENT": "true", "DRAIN_WAIT_SECONDS": "0"}):
        yield
    logger.setLevel(logging.INFO)


def bodies(malformed_ratio: float) -> list[str]:
    real = [json.dumps(r) for r in json.loads(REAL_DATA.read_text())] if REAL_DATA.exists() else []
    return real + [body for body, _ in generate_labelled(200, 13, malformed_ratio)]


def pii_values(all_bodies: list[str]) -> set[str]:
    """Every ip and device_id string in the input, valid or not (6+ chars: no false hits)."""
    values = set()
    for body in all_bodies:
        try:
            message = json.loads(body)
        except ValueError:
            continue
        if isinstance(message, dict):
            for field in ("ip", "device_id"):
                value = message.get(field)
                if isinstance(value, str) and len(value) >= 6:
                    values.add(value)
    return values


def key_forms(queue: Provisioned) -> set[str]:
    blob = base64.b64decode(read_parameter(boto3.client("ssm"), queue.data_key_parameter))
    key = boto3.client("kms").decrypt(CiphertextBlob=blob, EncryptionContext=KMS_ENCRYPTION_CONTEXT)
    plaintext = key["Plaintext"]
    forms = set()
    for part in (plaintext, plaintext[:16], plaintext[16:]):
        forms |= {
            base64.b64encode(part).decode(),
            base64.urlsafe_b64encode(part).decode(),
            part.hex(),
        }
    return forms


def test_nothing_the_function_emits_carries_pii_or_key_material(
    queue: Provisioned,
    db: pg8000.native.Connection,
    loud: None,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    function_logs: io.StringIO,
) -> None:
    # The event source mapping gets every kind of message; the drain only valid ones, since
    # its failures would wait out the queue's 30 s visibility timeout (same report code).
    mixed = bodies(malformed_ratio=0.1)
    valid = [body for body, _ in generate_labelled(200, seed=14, malformed_ratio=0)]
    inputs = mixed + valid
    sqs = boto3.client("sqs")
    emitted: list[str] = []

    def recording(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = lambda_handler(event, context)
        except Exception as error:
            emitted.append("".join(traceback.format_exception(error)))
            raise
        emitted.append(json.dumps(response))
        return response

    send_bodies(sqs, queue.queue_url, mixed)
    run_event_source_mapping(sqs, queue.queue_url, recording, batch_size=50, max_seconds=120)
    send_bodies(sqs, queue.queue_url, valid)
    run_schedule(sqs, queue.queue_url, recording, max_seconds=120)
    assert db.run("SELECT count(*) FROM user_logins")[0][0] > 200

    # Failed invocations: Postgres unreachable, then a data key KMS refuses.
    send_bodies(sqs, queue.queue_url, inputs[:20])
    event = receive_event(queue, 20)
    for broken in (
        {"DATABASE_URL": "postgresql://login:secret@127.0.0.1:1/nowhere"},
        {"DATA_KEY_CIPHERTEXT": base64.b64encode(b"\x01" * 184).decode()},
    ):
        reset_runtime()
        with patched_environ(broken), pytest.raises(Exception):  # noqa: B017, PT011
            recording(event, LocalContext())
    reset_runtime()

    captured = capfd.readouterr()
    logs = function_logs.getvalue()
    everything = "\n".join([captured.out, captured.err, caplog.text, logs, *emitted])
    assert '"message":"message left on the queue"' in logs  # the JSON logs, extras included
    assert '"detail":' in logs
    assert '"_aws"' in everything  # and its EMF metrics
    assert "Traceback" in everything  # and the failures
    leaked = sorted(v for v in pii_values(inputs) if v in everything)
    assert leaked == []
    assert [form for form in key_forms(queue) if form in everything] == []
