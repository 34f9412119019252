"""Parallel masking on real Postgres: a worker process masks the last part of a large batch.

The rows must be those the function makes alone, each message's tokens in its own row, and a
worker that dies in the middle of a batch may cost time, never a row or a retry.
"""

from __future__ import annotations

import io
import json
import os
import signal
import uuid
from typing import Any

import pg8000.native
import pytest

from login_etl.adapters.mask_worker import MaskWorker
from login_etl.adapters.postgres_store import PostgresLoginStore
from login_etl.domain.masking import DeterministicMasker
from login_etl.handler import lambda_handler
from login_etl.observability import metrics
from login_etl.pipeline import OFFLOAD_MIN_ROWS, process_batch
from login_etl.runtime import get_runtime
from login_etl_cli.sample_data import generate_labelled
from login_etl_local.event_source_mapping import LocalContext
from login_etl_local.provisioning import Provisioned
from login_etl_local.stack_record import patched_environ
from tests.function.integration.test_streamed_write import DAY, NO_CLAIMS, batch
from tests.function.integration.test_write_guarantees import count, params
from tests.sqs_helpers import independent_fernet

MASKER = DeterministicMasker(bytes(range(32)))


def rows_by_user(db: pg8000.native.Connection) -> dict[str, tuple[str, str]]:
    rows = db.run("SELECT user_id, masked_ip, masked_device_id FROM user_logins")
    assert len({row[0] for row in rows}) == len(rows)  # one row per login
    return {row[0]: (row[1], row[2]) for row in rows}


def expected_by_user(messages: list[Any]) -> dict[str, tuple[str, str]]:
    logins = [json.loads(message.body) for message in messages]
    return {x["user_id"]: (MASKER.mask(x["ip"]), MASKER.mask(x["device_id"])) for x in logins}


def test_with_a_worker_each_row_has_its_own_tokens(db: pg8000.native.Connection) -> None:
    messages = batch(seed=71)
    worker = MaskWorker(MASKER.mask, timeout_s=30.0)
    store = PostgresLoginStore(params())
    try:
        outcome = process_batch(messages, MASKER.mask, NO_CLAIMS, store, DAY, offload=worker)
        assert worker.pid is not None  # the worker did take part
    finally:
        store.close()
        worker.close()

    assert (outcome.written, outcome.failures) == (len(messages), [])
    assert rows_by_user(db) == expected_by_user(messages)


def test_a_worker_killed_mid_batch_costs_time_not_rows(
    db: pg8000.native.Connection, function_logs: io.StringIO, capfd: pytest.CaptureFixture[str]
) -> None:
    messages = batch(seed=72)
    worker = MaskWorker(MASKER.mask, timeout_s=30.0)
    worker.submit(["warm-up"])()  # running, so that it can be killed in the middle
    victim = worker.pid
    assert victim is not None
    calls = 0

    def mask_killing_the_worker(value: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 50:  # the worker has its values by now: the batch is half done
            os.kill(victim, signal.SIGKILL)
        return MASKER.mask(value)

    store = PostgresLoginStore(params())
    try:
        outcome = process_batch(
            messages, mask_killing_the_worker, NO_CLAIMS, store, DAY, offload=worker
        )
    finally:
        store.close()
        worker.close()

    assert (outcome.written, outcome.failures) == (len(messages), [])
    assert rows_by_user(db) == expected_by_user(messages)
    assert count(db, "SELECT count(*) FROM login_etl_processed_messages") == len(messages)
    assert "mask worker failed" in function_logs.getvalue()
    capfd.readouterr()
    metrics.flush_metrics()  # what the handler's decorator does at the end of an invocation
    emf = [json.loads(line) for line in capfd.readouterr().out.splitlines() if "_aws" in line]
    assert sum(sum(line.get("MaskWorkerFailed", [0])) for line in emf) == 1


def sqs_event(bodies: list[str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "test",
                "body": body,
                "attributes": {"SentTimestamp": "1764028800000", "ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
            }
            for body in bodies
        ]
    }


@pytest.mark.parametrize("setting", ["on", "off"])
def test_the_handler_masks_a_large_batch_in_parallel_when_set(
    queue: Provisioned, db: pg8000.native.Connection, setting: str
) -> None:
    labelled = generate_labelled(OFFLOAD_MIN_ROWS + 200, seed=73, malformed_ratio=0.02)
    event = sqs_event([body for body, _ in labelled])
    bad = {
        record["messageId"]
        for record, (_, valid) in zip(event["Records"], labelled, strict=True)
        if not valid
    }

    with patched_environ({"PARALLEL_MASKING": setting}):
        response = lambda_handler(event, LocalContext())
        worker = get_runtime().key.current().worker

    assert {item["itemIdentifier"] for item in response["batchItemFailures"]} == bad
    assert (worker is not None and worker.pid is not None) == (setting == "on")
    fernet = independent_fernet(queue)
    logins = {json.loads(body)["user_id"]: json.loads(body) for body, valid in labelled if valid}
    rows = rows_by_user(db)
    assert rows.keys() == logins.keys()
    for user_id, (masked_ip, masked_device_id) in rows.items():
        assert fernet.decrypt(masked_ip).decode() == logins[user_id]["ip"]
        assert fernet.decrypt(masked_device_id).decode() == logins[user_id]["device_id"]
