"""The function's database user needs INSERT on user_logins and nothing that reads it back.

With the schema made by an admin, the handler loads through a role that cannot SELECT the
masked values: stolen function credentials (the role also holds kms:Decrypt) do not give the
table's PII in bulk. ``login-etl unmask`` runs with an operator's database user instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import boto3
import pg8000.native
import pytest

from login_etl.adapters.postgres_connection import connect
from login_etl.adapters.postgres_store import ensure_schema
from login_etl.config import Settings, connection_params_from_url
from login_etl.handler import lambda_handler
from login_etl.runtime import reset_runtime
from login_etl_tools.event_source_mapping import LocalContext
from login_etl_tools.provisioning import Provisioned
from login_etl_tools.seeding import send_bodies
from login_etl_tools.stack import LocalStack, patched_environ
from tests.sqs_helpers import receive_event

GRANTS = """
CREATE ROLE login_writer LOGIN PASSWORD 'writer-password';
GRANT USAGE ON SCHEMA public TO login_writer;
GRANT INSERT ON user_logins TO login_writer;
GRANT SELECT, INSERT ON login_etl_processed_messages TO login_writer;
"""


@pytest.fixture
def writer_url(stack: LocalStack, db: pg8000.native.Connection) -> Iterator[str]:
    ensure_schema(db)  # the admin's step
    db.run("DROP ROLE IF EXISTS login_writer")
    for statement in filter(str.strip, GRANTS.split(";")):
        db.run(statement)
    parts = urlsplit(stack.database_url)
    url = f"postgresql://login_writer:writer-password@{parts.hostname}:{parts.port}{parts.path}"
    reset_runtime()
    with patched_environ({"DATABASE_URL": url}):
        yield url
    reset_runtime()
    db.run("DROP OWNED BY login_writer")
    db.run("DROP ROLE login_writer")


def test_the_handler_loads_through_an_insert_only_role(
    queue: Provisioned, db: pg8000.native.Connection, writer_url: str
) -> None:
    body = {
        "user_id": "u",
        "app_version": "1.0",
        "device_type": "ios",
        "ip": "10.9.8.7",
        "locale": None,
        "device_id": "111-22-3333",
    }
    send_bodies(boto3.client("sqs"), queue.queue_url, [json.dumps(body)] * 3)

    response = lambda_handler(receive_event(queue, 3), LocalContext())

    assert response == {"batchItemFailures": []}
    assert db.run("SELECT count(*) FROM user_logins") == [[3]]
    writer = connect(connection_params_from_url(writer_url, Settings.from_env()))
    with pytest.raises(pg8000.native.DatabaseError) as denied:
        writer.run("SELECT masked_ip FROM user_logins")
    assert denied.value.args[0]["C"] == "42501"  # insufficient_privilege
    writer.close()
