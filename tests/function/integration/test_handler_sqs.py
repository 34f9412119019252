from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pg8000.native
import pytest

from login_etl.adapters import aws
from login_etl.handler import lambda_handler
from login_etl.runtime import reset_runtime
from login_etl_cli.seeding import send_bodies
from login_etl_local.event_source_mapping import LocalContext, run_event_source_mapping
from login_etl_local.provisioning import Provisioned
from login_etl_local.stack_record import patched_environ
from tests.sqs_helpers import independent_fernet, receive_event

LOGINS = [
    {
        "user_id": "u-1",
        "app_version": "2.3.0",
        "device_type": "android",
        "ip": "199.172.111.135",
        "locale": "RU",
        "device_id": "593-47-5928",
    },
    {
        "user_id": "u-2",
        "app_version": "0.96",
        "device_type": "ios",
        "ip": "2001:DB8::0001",
        "locale": None,
        "device_id": "593-47-5928",
    },
]
MALFORMED = [json.dumps({"foo": "oops_wrong_msg_type", "bar": "123"}), "not json at all"]


def test_mixed_batch(
    queue: Provisioned, db: pg8000.native.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    send_bodies(boto3.client("sqs"), queue.queue_url, [json.dumps(x) for x in LOGINS] + MALFORMED)
    event = receive_event(queue, 4)
    bad_ids = {r["messageId"] for r in event["Records"] if r["body"] in MALFORMED}

    response = lambda_handler(event, LocalContext())

    assert set(response) == {"batchItemFailures"}
    assert {item["itemIdentifier"] for item in response["batchItemFailures"]} == bad_ids
    assert all(set(item) == {"itemIdentifier"} for item in response["batchItemFailures"])
    rows = db.run(
        "SELECT user_id, masked_ip, masked_device_id, locale, app_version,"
        " create_date FROM user_logins ORDER BY user_id"
    )
    fernet = independent_fernet(queue)
    assert [fernet.decrypt(r[1]).decode() for r in rows] == ["199.172.111.135", "2001:db8::1"]
    assert rows[0][2] == rows[1][2]  # same device, same mask: duplicates stay visible
    assert fernet.decrypt(rows[0][2]).decode() == "593-47-5928"
    assert [r[3] for r in rows] == ["RU", None]
    assert [r[4] for r in rows] == [2_003_000, 96_000]
    sent_days = {
        datetime.fromtimestamp(int(r["attributes"]["SentTimestamp"]) / 1000, UTC).date()
        for r in event["Records"]
    }
    assert {r[5] for r in rows} <= sent_days

    logged = capsys.readouterr().out
    assert "missing_keys" in logged
    assert "not_json" in logged
    for secret in ("199.172.111.135", "593-47-5928", "2001:db8", "oops_wrong_msg_type"):
        assert secret not in logged


def test_full_success_is_an_empty_list(queue: Provisioned, db: pg8000.native.Connection) -> None:
    send_bodies(boto3.client("sqs"), queue.queue_url, [json.dumps(LOGINS[0])])
    assert lambda_handler(receive_event(queue, 1), LocalContext()) == {"batchItemFailures": []}


def test_kms_unreachable_at_cold_start_fails_the_invocation(
    queue: Provisioned, db: pg8000.native.Connection
) -> None:
    send_bodies(boto3.client("sqs"), queue.queue_url, [json.dumps(LOGINS[0])])
    event = receive_event(queue, 1)
    reset_runtime()
    aws._client.cache_clear()
    try:
        dead_endpoint = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
        with patched_environ(dead_endpoint), pytest.raises(Exception, match="Could not connect"):
            lambda_handler(event, LocalContext())
    finally:
        aws._client.cache_clear()
        reset_runtime()
    assert db.run("SELECT to_regclass('public.user_logins')") == [[None]]
    assert lambda_handler(event, LocalContext()) == {"batchItemFailures": []}


# The attribute an earlier `login-etl dlq redrive` set: the function now reads no attribute.
REDRIVE_ATTRIBUTE = "login_etl_original_message_id"
LOGIN_TEMPLATE = json.dumps(LOGINS[0])


def login(user: str) -> str:
    return LOGIN_TEMPLATE.replace('"u-1"', json.dumps(user))


def test_a_producer_cannot_make_the_function_skip_logins(
    queue: Provisioned, db: pg8000.native.Connection
) -> None:
    """Four different logins, two of them claiming to be copies of the other two: the ledger
    keys on SQS's own messageId, which no producer chooses, so all four are written."""
    sqs = boto3.client("sqs")
    a, b = send_bodies(sqs, queue.queue_url, [login("a"), login("b")])
    forged = set()
    for user, victim in (("c", a), ("d", b)):
        forged.add(
            sqs.send_message(
                QueueUrl=queue.queue_url,
                MessageBody=login(user),
                MessageAttributes={
                    REDRIVE_ATTRIBUTE: {"DataType": "String", "StringValue": victim}
                },
            )["MessageId"]
        )

    stats = run_event_source_mapping(sqs, queue.queue_url, lambda_handler)

    assert stats.deleted == 4
    assert db.run("SELECT user_id FROM user_logins ORDER BY 1") == [["a"], ["b"], ["c"], ["d"]]
    ledger = {row[0] for row in db.run("SELECT message_id FROM login_etl_processed_messages")}
    assert ledger == {a, b, *forged}
