"""Every message ends in exactly one place, a row or the DLQ, under load and under faults."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import boto3
import pg8000.native
import pytest

from login_etl.handler import lambda_handler
from login_etl.runtime import reset_runtime
from login_etl_cli.sample_data import generate_labelled
from login_etl_cli.seeding import send_bodies
from login_etl_local.event_source_mapping import (
    DeliveryStats,
    LocalContext,
    run_event_source_mapping,
)
from login_etl_local.postgres_server import PostgresServer
from login_etl_local.provisioning import Provisioned, provision
from login_etl_local.stack_record import patched_environ
from tests.sqs_helpers import dlq_bodies, receive_event


def count(db: pg8000.native.Connection, sql: str) -> int:
    return int(db.run(sql)[0][0])


def test_conservation_under_load(queue: Provisioned, db: pg8000.native.Connection) -> None:
    """10,000 messages, 5 % malformed, 10 % of the deletes lost (so delivered twice)."""
    labelled = generate_labelled(10_000, seed=4, malformed_ratio=0.05)
    malformed = [body for body, valid in labelled if not valid]
    sqs = boto3.client("sqs")
    send_bodies(sqs, queue.queue_url, [body for body, _ in labelled])

    stats = run_event_source_mapping(
        sqs,
        queue.queue_url,
        lambda_handler,
        batch_size=1000,
        lose_delete_ratio=0.10,
    )

    assert stats.lost_deletes > 750  # the fault really happened, at scale
    assert count(db, "SELECT count(*) FROM user_logins") == len(labelled) - len(malformed)
    assert count(db, "SELECT count(*) FROM login_etl_processed_messages") == 10_000 - len(malformed)
    assert Counter(dlq_bodies(queue)) == Counter(malformed)  # byte-identical, nothing else


@pytest.fixture
def own_postgres(stack: object) -> Iterator[PostgresServer]:
    """A server of this test's own, so stopping it does not disturb the others."""
    server = PostgresServer.start()
    reset_runtime()
    with patched_environ({"DATABASE_URL": server.url}):
        yield server
    reset_runtime()
    server.stop()


def test_postgres_outage_mid_run(queue: Provisioned, own_postgres: PostgresServer) -> None:
    labelled = generate_labelled(2_000, seed=5, malformed_ratio=0.05)
    sqs = boto3.client("sqs")
    send_bodies(sqs, queue.queue_url, [body for body, _ in labelled])
    events: list[str] = []

    def outage(stats: DeliveryStats) -> None:
        if stats.invocations == 3:
            own_postgres.kill()
            events.append("stopped")
        elif stats.failed_invocations == 2 and "started" not in events:
            own_postgres.start_again()
            events.append("started")

    stats = run_event_source_mapping(
        sqs, queue.queue_url, lambda_handler, batch_size=200, on_batch=outage
    )

    assert events == ["stopped", "started"]
    assert stats.failed_invocations == 2  # the batches in flight failed as a whole
    conn = pg8000.native.Connection(
        user="postgres", password="postgres", host="127.0.0.1", port=own_postgres.port
    )
    valid = sum(1 for _, ok in labelled if ok)
    assert count(conn, "SELECT count(*) FROM user_logins") == valid
    conn.close()
    assert len(dlq_bodies(queue)) == len(labelled) - valid


def test_redelivery_after_commit_writes_nothing(
    queue: Provisioned, db: pg8000.native.Connection
) -> None:
    bodies = [body for body, _ in generate_labelled(20, seed=6, malformed_ratio=0)]
    send_bodies(boto3.client("sqs"), queue.queue_url, bodies)
    event = receive_event(queue, 20)
    assert lambda_handler(event, LocalContext()) == {"batchItemFailures": []}
    # The function "crashed" before the event source mapping deleted: the same batch again.
    assert lambda_handler(event, LocalContext()) == {"batchItemFailures": []}
    assert count(db, "SELECT count(*) FROM user_logins") == 20


def test_same_content_in_two_messages_is_two_logins(
    queue: Provisioned, db: pg8000.native.Connection
) -> None:
    body = generate_labelled(1, seed=7, malformed_ratio=0)[0][0]
    send_bodies(boto3.client("sqs"), queue.queue_url, [body, body])
    lambda_handler(receive_event(queue, 2), LocalContext())
    assert count(db, "SELECT count(*) FROM user_logins") == 2


def test_fifo_order_is_kept_within_a_group(stack: object, db: pg8000.native.Connection) -> None:
    sqs = boto3.client("sqs")
    fifo = provision(
        sqs,
        boto3.client("kms"),
        boto3.client("ssm"),
        queue_name="login-order-test.fifo",
        max_receive_count=3,
    )
    valid = [json.loads(body) for body, _ in generate_labelled(5, seed=8, malformed_ratio=0)]
    g = [
        json.dumps({**valid[0], "user_id": "g-1"}),
        json.dumps({"foo": "x"}),
        json.dumps({**valid[1], "user_id": "g-3"}),
    ]
    h = [json.dumps({**valid[2], "user_id": f"h-{i}"}) for i in (1, 2)]
    g_ids = send_bodies(sqs, fifo.queue_url, g, group_id="g")
    send_bodies(sqs, fifo.queue_url, h, group_id="h")

    stats = run_event_source_mapping(sqs, fifo.queue_url, lambda_handler, batch_size=10)

    written = db.run("SELECT l.user_id FROM user_logins l ORDER BY user_id")
    assert [r[0] for r in written] == ["g-1", "g-3", "h-1", "h-2"]
    assert dlq_bodies(fifo) == [json.dumps({"foo": "x"})]
    # g-3 came after the bad message: it was held back while that one was retried and
    # dead-lettered, and committed after g-1.
    assert stats.deliveries_by_id[g_ids[1]] == 3
    assert stats.deliveries_by_id[g_ids[2]] >= 2
    committed = dict(db.run("SELECT message_id, processed_at FROM login_etl_processed_messages"))
    assert committed[g_ids[0]] < committed[g_ids[2]]
