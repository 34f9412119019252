"""The sample events in events/ are real inputs: the handler must answer them as documented."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pg8000.native

from login_etl.handler import lambda_handler
from login_etl_cli.seeding import send_bodies
from login_etl_local.event_source_mapping import LocalContext
from login_etl_local.provisioning import Provisioned
from login_etl_local.stack_record import LocalStack

EVENTS = Path(__file__).resolve().parents[3] / "events"


def test_sqs_batch_event(stack: LocalStack, db: pg8000.native.Connection) -> None:
    event = json.loads((EVENTS / "sqs-batch.json").read_text())
    malformed = {r["messageId"] for r in event["Records"] if "user_id" not in r["body"]}

    response = lambda_handler(event, LocalContext())

    assert {i["itemIdentifier"] for i in response["batchItemFailures"]} == malformed
    assert len(malformed) == 2
    assert db.run("SELECT count(*), count(DISTINCT masked_device_id) FROM user_logins") == [[4, 3]]
    assert db.run("SELECT DISTINCT create_date::text FROM user_logins") == [["2023-11-14"]]


def test_sqs_fifo_batch_event(stack: LocalStack, db: pg8000.native.Connection) -> None:
    event = json.loads((EVENTS / "sqs-fifo-batch.json").read_text())
    records = event["Records"]
    bad_group = records[2]["attributes"]["MessageGroupId"]

    response = lambda_handler(event, LocalContext())

    # The invalid message fails, and so does the later message of its group (order is kept).
    failed = [i["itemIdentifier"] for i in response["batchItemFailures"]]
    assert failed == [r["messageId"] for r in records[2:4]]
    assert {r["attributes"]["MessageGroupId"] for r in records[2:4]} == {bad_group}
    assert db.run("SELECT app_version FROM user_logins ORDER BY app_version") == [
        [96_000],
        [2_003_000],
        [2_003_001],
    ]


def test_scheduled_event_drains_the_queue(queue: Provisioned, db: pg8000.native.Connection) -> None:
    sample = json.loads((EVENTS / "sqs-batch.json").read_text())
    send_bodies(boto3.client("sqs"), queue.queue_url, [r["body"] for r in sample["Records"]])
    event = json.loads((EVENTS / "scheduled.json").read_text())

    response = lambda_handler(event, LocalContext())

    assert response == {
        "received": 6,
        "written": 4,
        "duplicates": 0,
        "failed": 2,
        "batches": 1,
        "deleteFailures": 0,
        "stoppedBecause": "queue-empty",
    }
    assert db.run("SELECT count(*) FROM user_logins") == [[4]]


def test_prune_ledger_event_forgets_only_entries_past_the_retention_window(
    stack: LocalStack, db: pg8000.native.Connection
) -> None:
    """The input the template's PruneLedger rule sends (EventBridge replaces the event by it)."""
    lambda_handler(json.loads((EVENTS / "sqs-batch.json").read_text()), LocalContext())
    db.run(
        "UPDATE login_etl_processed_messages SET processed_at = now() - interval '100 days'"
        " WHERE message_id IN (SELECT message_id FROM login_etl_processed_messages LIMIT 3)"
    )
    event = json.loads((EVENTS / "prune-ledger.json").read_text())

    response = lambda_handler(event, LocalContext())

    assert response["deleted"] == 3
    assert response["stoppedBecause"] == "done"
    assert db.run("SELECT count(*) FROM login_etl_processed_messages") == [[1]]
    assert db.run("SELECT count(*) FROM user_logins") == [[4]]  # rows are never pruned
