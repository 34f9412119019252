"""The sample events in events/ are real inputs: the handler must answer them as documented."""

from __future__ import annotations

import json
from pathlib import Path

import pg8000.native

from login_etl.handler import lambda_handler
from login_etl_tools.event_source_mapping import LocalContext
from login_etl_tools.stack import LocalStack

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_sqs_batch_event(stack: LocalStack, db: pg8000.native.Connection) -> None:
    event = json.loads((EVENTS / "sqs-batch.json").read_text())
    malformed = {r["messageId"] for r in event["Records"] if "user_id" not in r["body"]}

    response = lambda_handler(event, LocalContext())

    assert {i["itemIdentifier"] for i in response["batchItemFailures"]} == malformed
    assert len(malformed) == 2
    assert db.run("SELECT count(*), count(DISTINCT masked_device_id) FROM user_logins") == [[4, 3]]
    assert db.run("SELECT DISTINCT create_date::text FROM user_logins") == [["2023-11-14"]]
