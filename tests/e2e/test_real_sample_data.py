"""The 100 real take-home messages through login-queue and the handler until the queue is empty."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pg8000.native
import pytest

from login_etl.domain import app_version
from login_etl.handler import lambda_handler
from login_etl_cli.seeding import send_bodies
from login_etl_local.event_source_mapping import run_event_source_mapping
from login_etl_local.provisioning import Provisioned
from tests.real_data import REAL_DATA
from tests.sqs_helpers import dlq_bodies, independent_fernet

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not REAL_DATA.exists(),
        reason=f"real take-home data not found at {REAL_DATA} (../shared/realdata is optional)",
    ),
]


@pytest.mark.max_receive_count(5)
def test_real_messages_end_to_end(queue: Provisioned, db: pg8000.native.Connection) -> None:
    records: list[dict[str, Any]] = json.loads(REAL_DATA.read_text())
    bodies = [json.dumps(r) for r in records]  # as the take-home's loader sent them
    sqs = boto3.client("sqs")
    send_bodies(sqs, queue.queue_url, bodies)

    stats = run_event_source_mapping(sqs, queue.queue_url, lambda_handler, batch_size=10)

    rows = db.run(
        "SELECT user_id, device_type, masked_ip, masked_device_id, locale,"
        " app_version, create_date FROM user_logins"
    )
    assert len(rows) == 99
    assert sum(1 for r in rows if r[4] is None) == 29
    assert db.run("SELECT count(*) FROM user_logins WHERE locale = 'None'") == [[0]]

    poison = json.dumps({"foo": "oops_wrong_msg_type", "bar": "123"})
    assert dlq_bodies(queue) == [poison]
    poison_deliveries = [n for mid, n in stats.deliveries_by_id.items() if n > 1]
    assert poison_deliveries == [5]

    fernet = independent_fernet(queue)
    by_user = {r["user_id"]: r for r in records if "user_id" in r}
    for user_id, device_type, masked_ip, masked_device_id, locale, version, _ in rows:
        source = by_user[user_id]
        assert fernet.decrypt(masked_ip).decode() == source["ip"]
        assert fernet.decrypt(masked_device_id).decode() == source["device_id"]
        assert (device_type, locale) == (source["device_type"], source["locale"])
        assert version == app_version.encode(source["app_version"])
