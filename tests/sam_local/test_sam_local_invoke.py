"""Every event in events/ through the real ``sam local invoke``: the built function, in a Lambda
container, against LocalStack and a throwaway Postgres (reached over the docker bridge).

``make test-sam-local`` prepares the engine, the base image, the build, LocalStack and Postgres
and names them in ``LOGIN_ETL_SAM_LOCAL``; anywhere else (``make test``) these tests are
skipped. Each test checks what the function really did: its response, the rows in Postgres,
the queue.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import pg8000.native
import pytest

from login_etl_cli.seeding import send_bodies
from login_etl_local.sam_local.context import SamLocalContext

ROOT = Path(__file__).resolve().parents[2]
EVENTS = sorted(p for p in (ROOT / "events").glob("*.json") if not p.name.startswith("env."))
CONTEXT = SamLocalContext.from_environment()

pytestmark = pytest.mark.skipif(
    CONTEXT is None, reason="run by `make test-sam-local` (it starts a container engine)"
)


@pytest.fixture
def context() -> SamLocalContext:
    assert CONTEXT is not None
    return CONTEXT


@pytest.fixture
def db(context: SamLocalContext) -> Iterator[pg8000.native.Connection]:
    """The stack's database as the host reaches it, the function's tables dropped first."""
    url = urlsplit(context.host_environment["DATABASE_URL"])
    conn = pg8000.native.Connection(
        user=unquote(url.username or ""),
        password=unquote(url.password or ""),
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        database=url.path.lstrip("/"),
    )
    conn.run("DROP VIEW IF EXISTS user_logins_decoded")
    conn.run("DROP TABLE IF EXISTS user_logins, login_etl_processed_messages")
    yield conn
    conn.close()


@pytest.fixture
def sqs(context: SamLocalContext) -> Any:
    """The stack's SQS, from the host."""
    environment = context.host_environment
    return boto3.client(
        "sqs",
        endpoint_url=environment["AWS_ENDPOINT_URL"],
        region_name=environment["AWS_REGION"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def records(event: str) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads((ROOT / "events" / event).read_text())["Records"]
    return loaded


def failed_ids(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def ran_in_the_lambda_container(logs: str) -> None:
    """SAM ran it in a container of its own (the emulator's log lines are streamed
    asynchronously and may be cut short, so they are not required)."""
    assert "SAM_CONTAINER_ID: " in logs
    assert "Invoking login_etl.handler.lambda_handler (python3.12)" in logs


def check_sqs_batch(context: SamLocalContext, db: pg8000.native.Connection, sqs: Any) -> None:
    event = records("sqs-batch.json")
    malformed = {r["messageId"] for r in event if "user_id" not in r["body"]}

    response, logs = context.invoke(ROOT / "events" / "sqs-batch.json")

    ran_in_the_lambda_container(logs)
    assert set(failed_ids(response)) == malformed
    assert len(malformed) == 2
    assert db.run("SELECT count(*), count(DISTINCT masked_device_id) FROM user_logins") == [[4, 3]]
    assert db.run("SELECT DISTINCT create_date::text FROM user_logins") == [["2023-11-14"]]
    stored = json.dumps(db.run("SELECT * FROM user_logins"), default=str)
    raw_ips = {json.loads(r["body"])["ip"] for r in event if r["messageId"] not in malformed}
    assert not any(ip in stored for ip in raw_ips)  # masked, not copied
    assert all(token.startswith("gAAAA") for [token] in db.run("SELECT masked_ip FROM user_logins"))


def check_sqs_fifo_batch(context: SamLocalContext, db: pg8000.native.Connection, sqs: Any) -> None:
    event = records("sqs-fifo-batch.json")

    response, logs = context.invoke(ROOT / "events" / "sqs-fifo-batch.json")

    ran_in_the_lambda_container(logs)
    # The invalid third message fails, and so does the later message of its group (order kept);
    # the other group's message after it is written.
    assert failed_ids(response) == [r["messageId"] for r in event[2:4]]
    assert len({r["attributes"]["MessageGroupId"] for r in event[2:4]}) == 1
    assert event[4]["attributes"]["MessageGroupId"] != event[2]["attributes"]["MessageGroupId"]
    assert db.run("SELECT app_version FROM user_logins ORDER BY app_version") == [
        [96_000],
        [2_003_000],
        [2_003_001],
    ]


def check_scheduled(context: SamLocalContext, db: pg8000.native.Connection, sqs: Any) -> None:
    queue_url = context.host_environment["QUEUE_URL"]
    sqs.purge_queue(QueueUrl=queue_url)  # (the run's fresh stack: nothing else sends to it)
    send_bodies(sqs, queue_url, [r["body"] for r in records("sqs-batch.json")])

    response, logs = context.invoke(ROOT / "events" / "scheduled.json")

    ran_in_the_lambda_container(logs)
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
    # The written messages were deleted by the function; the two failed ones wait for a retry.
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert sum(int(v) for v in attributes.values()) == 2


def check_prune_ledger(context: SamLocalContext, db: pg8000.native.Connection, sqs: Any) -> None:
    context.invoke(ROOT / "events" / "sqs-batch.json")  # four ledger entries, made now
    db.run(
        "UPDATE login_etl_processed_messages SET processed_at = now() - interval '100 days'"
        " WHERE message_id IN (SELECT message_id FROM login_etl_processed_messages LIMIT 3)"
    )

    response, logs = context.invoke(ROOT / "events" / "prune-ledger.json")

    ran_in_the_lambda_container(logs)
    assert response["deleted"] == 3
    assert response["stoppedBecause"] == "done"
    assert db.run("SELECT count(*) FROM login_etl_processed_messages") == [[1]]


CHECKS: dict[str, Callable[[SamLocalContext, pg8000.native.Connection, Any], None]] = {
    "sqs-batch.json": check_sqs_batch,
    "sqs-fifo-batch.json": check_sqs_fifo_batch,
    "scheduled.json": check_scheduled,
    "prune-ledger.json": check_prune_ledger,
}


@pytest.mark.parametrize("event", EVENTS, ids=lambda path: path.name)
def test_sam_local_invoke(
    event: Path, context: SamLocalContext, db: pg8000.native.Connection, sqs: Any
) -> None:
    check = CHECKS.get(event.name)
    assert check is not None, f"events/{event.name} has no expected outcome here: add one"
    check(context, db, sqs)
