"""The store under production conditions: tables with their own constraints, slow and locked
databases, overlapping batches, rotating passwords. Real Postgres, real handler where it matters.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from typing import Any

import boto3
import pg8000.native
import pytest

from login_etl.adapters.postgres_connection import ConnectionParams
from login_etl.adapters.postgres_isolation import UnattributedRefusalError
from login_etl.adapters.postgres_store import PostgresLoginStore
from login_etl.config import Settings
from login_etl.domain.models import QueueMessage, UserLoginRow
from login_etl.domain.redrive_claim import ClaimVerifier
from login_etl.handler import lambda_handler
from login_etl.pipeline import process_batch
from login_etl.runtime import connection_params, connection_params_source
from login_etl_cli.sample_data import generate_labelled
from login_etl_cli.seeding import send_bodies
from login_etl_local.event_source_mapping import LocalContext
from login_etl_local.provisioning import Provisioned
from tests.sqs_helpers import receive_event

DAY = date(2026, 11, 24)
GIVEN_TABLE = (
    "CREATE TABLE user_logins(user_id varchar(128) {extra}, device_type varchar(32),"
    " masked_ip varchar(256), masked_device_id varchar(256), locale varchar(32),"
    " app_version integer, create_date date {table_extra})"
)


def given_table(db: pg8000.native.Connection, extra: str = "", table_extra: str = "") -> None:
    """The assignment's table, as a DBA may already have made it (with constraints of theirs)."""
    db.run(GIVEN_TABLE.format(extra=extra, table_extra=table_extra))


def row(user_id: str, locale: str | None = "RU") -> UserLoginRow:
    return UserLoginRow(user_id, "ios", "mip", "mdev", locale, 2_003_000, DAY)


def count(db: pg8000.native.Connection, sql: str) -> int:
    return int(db.run(sql)[0][0])


def params(**overrides: Any) -> ConnectionParams:
    return replace(connection_params(Settings.from_env()), **overrides)


@pytest.fixture
def store(db: pg8000.native.Connection) -> Iterator[PostgresLoginStore]:
    made = PostgresLoginStore(params())
    yield made
    made.close()


# --- refusals that only appear at COMMIT ---------------------------------------------------


def test_a_deferred_refusal_is_reported_never_acknowledged(
    queue: Provisioned, db: pg8000.native.Connection
) -> None:
    """A DEFERRABLE INITIALLY DEFERRED foreign key fails at COMMIT, after every statement
    passed: the unknown user's message is reported, the other five are written."""
    logins = [json.loads(body) for body, _ in generate_labelled(6, seed=21, malformed_ratio=0)]
    db.run("CREATE TABLE known_users(user_id varchar(128) PRIMARY KEY)")
    for login in logins[:5]:
        db.run("INSERT INTO known_users VALUES (:u)", u=login["user_id"])
    given_table(db, extra="REFERENCES known_users DEFERRABLE INITIALLY DEFERRED")
    ids = send_bodies(boto3.client("sqs"), queue.queue_url, [json.dumps(x) for x in logins])

    response = lambda_handler(receive_event(queue, 6), LocalContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": ids[5]}]}
    assert count(db, "SELECT count(*) FROM user_logins") == 5
    ledger = {r[0] for r in db.run("SELECT message_id FROM login_etl_processed_messages")}
    assert ledger == set(ids[:5])


def test_a_refusal_no_row_explains_fails_the_whole_write(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    """A statement-level rule (more than 5 rows in one INSERT) that no single row breaks:
    nothing can be attributed, so nothing is acknowledged."""
    given_table(db)
    db.run(
        "CREATE OR REPLACE FUNCTION at_most_five() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF (SELECT count(*) FROM new_rows) > 5 THEN"
        " RAISE EXCEPTION 'too many' USING ERRCODE = 'check_violation'; END IF;"
        " RETURN NULL; END $$"
    )
    db.run(
        "CREATE TRIGGER at_most_five AFTER INSERT ON user_logins"
        " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION at_most_five()"
    )
    with pytest.raises(UnattributedRefusalError) as raised:
        store.write([(f"m{i}", row(f"u{i}")) for i in range(6)])
    assert raised.value.sqlstate == "23514"
    assert count(db, "SELECT count(*) FROM user_logins") == 0
    assert count(db, "SELECT count(*) FROM login_etl_processed_messages") == 0


# --- many refused rows ----------------------------------------------------------------------


def test_five_thousand_refused_rows_of_ten_thousand(db: pg8000.native.Connection) -> None:
    """Half the rows break a CHECK constraint: each is reported, every other row is written.
    (Nested savepoints ran out of lock table, 53200, and retried the whole batch forever.)"""
    given_table(db, table_extra=", CHECK (locale <> 'XX')")
    logins = [json.loads(body) for body, _ in generate_labelled(10_000, seed=22, malformed_ratio=0)]
    messages = [
        QueueMessage(f"m{i:05}", json.dumps({**login, "locale": "XX" if i % 2 else "RU"}))
        for i, login in enumerate(logins)
    ]
    store = PostgresLoginStore(params())

    outcome = process_batch(messages, str.upper, ClaimVerifier([]), store, DAY)

    store.close()
    assert outcome.written == 5_000
    assert {f.message_id for f in outcome.failures} == {f"m{i:05}" for i in range(1, 10_000, 2)}
    assert {f.detail for f in outcome.failures} == {"Postgres refused the row (23514)"}
    assert count(db, "SELECT count(*) FROM user_logins") == 5_000
    assert count(db, "SELECT count(*) FROM user_logins WHERE locale = 'XX'") == 0
    assert count(db, "SELECT count(*) FROM login_etl_processed_messages") == 5_000


def test_a_row_that_conflicts_with_an_earlier_one_of_its_batch_is_the_one_refused(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    given_table(db, extra="UNIQUE")
    result = store.write([("m1", row("u1")), ("m2", row("u2")), ("m3", row("u1"))])
    assert result.rejected == {"m3": "23505"}
    assert store.write([("m1", row("u1")), ("m2", row("u2"))]).written == 2


# --- timeouts ---------------------------------------------------------------------------------


def hold_lock_and_write(
    db: pg8000.native.Connection,
    store: PostgresLoginStore,
    rows: list[tuple[str, UserLoginRow]],
    hold_after_waiting_s: float,
) -> Callable[[], Any]:
    """A DBA holds a lock on the ledger while the store writes; the write's outcome."""
    outcome: dict[str, Any] = {}

    def write() -> None:
        try:
            outcome["result"] = store.write(rows)
        except Exception as error:
            outcome["error"] = error

    db.run("START TRANSACTION")
    db.run("LOCK TABLE login_etl_processed_messages IN ACCESS EXCLUSIVE MODE")
    writer = threading.Thread(target=write)
    writer.start()
    wait_until(lambda: waiting_backends(db) > 0 or not writer.is_alive())
    time.sleep(hold_after_waiting_s)
    db.run("COMMIT")
    writer.join(timeout=120)

    def result() -> Any:
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    return result


def waiting_backends(db: pg8000.native.Connection) -> int:
    return count(
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'login-etl'"
        " AND wait_event_type = 'Lock'",
    )


def wait_until(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def test_a_write_may_wait_longer_than_the_connect_timeout(db: pg8000.native.Connection) -> None:
    """A lock held for longer than the connect timeout delays the write; it does not fail it."""
    store = PostgresLoginStore(params(connect_timeout_s=1))
    store.write([("m1", row("u1"))])  # creates the tables
    result = hold_lock_and_write(db, store, [("m2", row("u2"))], hold_after_waiting_s=2.5)
    assert result().written == 1
    store.close()


def test_the_server_ends_a_statement_past_the_statement_timeout(
    db: pg8000.native.Connection,
) -> None:
    store = PostgresLoginStore(params(statement_timeout_ms=500))
    store.write([("m1", row("u1"))])
    result = hold_lock_and_write(db, store, [("m2", row("u2"))], hold_after_waiting_s=2)
    with pytest.raises(pg8000.native.DatabaseError) as raised:
        result()
    assert raised.value.args[0]["C"] == "57014"  # query_canceled, by the server
    assert store.write([("m2", row("u2"))]).written == 1  # and the next try succeeds
    store.close()


def test_a_client_that_gives_up_ends_the_server_side_statement(
    db: pg8000.native.Connection,
) -> None:
    """The reply never comes in time (read timeout < statement timeout): the abandoned
    statement must not go on holding the ledger's locks that the retry will wait on."""
    store = PostgresLoginStore(params(read_timeout_s=1, statement_timeout_ms=600_000))
    store.write([("m1", row("u1"))])
    db.run("START TRANSACTION")
    db.run("LOCK TABLE login_etl_processed_messages IN ACCESS EXCLUSIVE MODE")
    with pytest.raises((pg8000.native.InterfaceError, OSError)):
        store.write([("m2", row("u2"))])
    # The abandoned backend is gone before the DBA lets go: nothing is left waiting.
    wait_until(lambda: waiting_backends(db) == 0, timeout_s=30)
    db.run("COMMIT")
    sessions = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'login-etl' AND pid <> pg_backend_pid()"
    )
    wait_until(lambda: count(db, sessions) == 0, timeout_s=30)  # a backend exits asynchronously
    assert store.write([("m2", row("u2"))]).written == 1
    store.close()


# --- overlapping batches ----------------------------------------------------------------------


def test_overlapping_batches_in_opposite_orders_do_not_deadlock(
    db: pg8000.native.Connection,
) -> None:
    """A redelivered batch racing its first delivery, ids in another order. A slow ledger
    (1 ms per row) makes the two inserts overlap for certain."""
    setup = PostgresLoginStore(params())
    setup.write([("warm-up", row("u0"))])
    setup.close()
    db.run(
        "CREATE OR REPLACE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " PERFORM pg_sleep(0.001); RETURN NEW; END $$"
    )
    db.run(
        "CREATE TRIGGER slow_row BEFORE INSERT ON login_etl_processed_messages"
        " FOR EACH ROW EXECUTE FUNCTION slow_row()"
    )
    batch = [(f"m{i:04}", row(f"u{i}")) for i in range(400)]
    orders = [batch, batch[::-1]]
    start = threading.Barrier(len(orders))
    errors: list[BaseException] = []
    written: list[int] = []

    def deliver(rows: list[tuple[str, UserLoginRow]]) -> None:
        store = PostgresLoginStore(params())
        try:
            store.write([("warm-up", row("u0"))])  # connect before the race starts
            start.wait()
            written.append(store.write(rows).written)
        except BaseException as error:
            errors.append(error)
        finally:
            store.close()

    threads = [threading.Thread(target=deliver, args=(order,)) for order in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sorted(written) == [0, 400]
    assert count(db, "SELECT count(*) FROM user_logins") == 401


# --- a rotating password ----------------------------------------------------------------------


def test_a_rotated_secret_is_read_again_when_the_password_stops_working(
    stack: object, db: pg8000.native.Connection
) -> None:
    base = connection_params(Settings.from_env())
    user, first, second = f"rotating_{uuid.uuid4().hex[:6]}", "first-Pa55", "second-Pa55"
    db.run(f"CREATE ROLE {user} LOGIN SUPERUSER PASSWORD '{first}'")
    secrets = boto3.client("secretsmanager")

    def secret(password: str) -> str:
        return json.dumps(
            {
                "host": base.host,
                "port": base.port,
                "username": user,
                "password": password,
                "dbname": base.database,
            }
        )

    arn = secrets.create_secret(Name=f"db-{user}", SecretString=secret(first))["ARN"]
    settings = replace(Settings.from_env(), database_url=None, database_secret_arn=arn)
    store = PostgresLoginStore(connection_params_source(settings))
    assert store.write([("m1", row("u1"))]).written == 1

    # Rotation: the password changes, the secret follows, the old sessions are ended.
    db.run(f"ALTER ROLE {user} PASSWORD '{second}'")
    secrets.put_secret_value(SecretId=arn, SecretString=secret(second))
    db.run(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{user}'")

    with pytest.raises((pg8000.native.InterfaceError, OSError)):
        store.write([("m2", row("u2"))])  # the batch on the dead connection fails as a whole
    assert store.write([("m2", row("u2"))]).written == 1  # the retry reconnects, new password
    store.close()
