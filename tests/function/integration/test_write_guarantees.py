"""The store under production conditions: tables with their own constraints, slow and locked
databases, overlapping batches, rotating passwords. Real Postgres, real handler where it matters.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import boto3
import pg8000.native
import pytest

from login_etl.adapters.postgres import connection
from login_etl.adapters.postgres.connection import END_BACKEND_TIMEOUT_S
from login_etl.adapters.postgres.isolation import UnattributedRefusalError
from login_etl.adapters.postgres.store import PostgresLoginStore
from login_etl.config import Settings
from login_etl.deadline import DEADLINE_MARGIN_MS, Deadline
from login_etl.domain.models import QueueMessage, UserLoginRow
from login_etl.handler import lambda_handler
from login_etl.pipeline import process_batch
from login_etl.runtime import connection_params, connection_params_source
from login_etl_cli.sample_data import generate_labelled
from login_etl_cli.seeding import send_bodies
from login_etl_local.event_source_mapping import LocalContext
from login_etl_local.provisioning import Provisioned
from tests.pipeline_helpers import upper_tokens
from tests.postgres_helpers import (
    DAY,
    another_application,
    count,
    given_table,
    ledger,
    login_body,
    params,
    row,
    wait_for,
    waiting_on_a_lock,
)
from tests.sqs_helpers import receive_event

MARGIN_S = DEADLINE_MARGIN_MS / 1000


def deadline_in(remaining_s: float) -> Deadline:
    ends = time.monotonic() + remaining_s
    return Deadline(lambda: int((ends - time.monotonic()) * 1000))


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

    outcome = process_batch(messages, upper_tokens, store, DAY)

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
    wait_for(
        lambda: waiting_on_a_lock(db) > 0 or not writer.is_alive(), "the batch waits on the lock"
    )
    time.sleep(hold_after_waiting_s)
    db.run("COMMIT")
    writer.join(timeout=120)

    def result() -> Any:
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    return result


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


def test_a_lock_wait_past_the_time_left_is_ended_by_the_server_first(
    db: pg8000.native.Connection,
) -> None:
    """3 s left, a 10-minute statement timeout, the ledger locked by a DBA: the server ends
    the wait before the deadline (a clean rollback, 57014), before the client would give up,
    and nothing is left waiting on the lock."""
    store = PostgresLoginStore(params(statement_timeout_ms=600_000))
    store.write([("m1", row("u1"))])
    db.run("START TRANSACTION")
    db.run("LOCK TABLE login_etl_processed_messages IN ACCESS EXCLUSIVE MODE")
    ends = time.monotonic() + 3 + DEADLINE_MARGIN_MS / 1000
    deadline = Deadline(lambda: int((ends - time.monotonic()) * 1000))
    with pytest.raises(pg8000.native.DatabaseError) as raised:
        store.write([("m2", row("u2"))], deadline)
    assert raised.value.args[0]["C"] == "57014"
    assert deadline.left_s() > 0
    assert waiting_on_a_lock(db) == 0
    db.run("COMMIT")
    assert store.write([("m2", row("u2"))]).written == 1
    store.close()


@pytest.mark.parametrize("lambda_deadline", [True, False], ids=["deadline", "no-deadline"])
def test_a_slow_copy_then_a_slow_commit_each_within_the_timeout_are_waited_for(
    db: pg8000.native.Connection, monkeypatch: pytest.MonkeyPatch, lambda_deadline: bool
) -> None:
    """The rows' COPY and the COMMIT travel in one message and the server answers them
    together: the client's one read waits for both statements, each within the statement
    timeout (a slow disk during the COPY, a deferred constraint trigger at the COMMIT), not
    for one statement's timeout and its margin."""
    given_table(db)
    db.run(
        "CREATE OR REPLACE FUNCTION slow_step() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " PERFORM pg_sleep(0.8); RETURN NULL; END $$"
    )
    db.run(
        "CREATE TRIGGER slow_copy AFTER INSERT ON user_logins"
        " FOR EACH STATEMENT EXECUTE FUNCTION slow_step()"
    )
    db.run(
        "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON user_logins"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_step()"
    )
    # The client's margin over the 1 s statement timeout, shortened from 10 s: 1.3 s a read.
    monkeypatch.setattr(connection, "READ_TIMEOUT_MARGIN_S", 0.3)
    ends = time.monotonic() + 30
    deadline = Deadline(lambda: int((ends - time.monotonic()) * 1000)) if lambda_deadline else None
    store = PostgresLoginStore(params(statement_timeout_ms=1_000))
    try:
        result = store.write([("m1", row("u1"))], deadline)
    finally:
        store.close()
    assert result.written == 1
    assert count(db, "SELECT count(*) FROM user_logins") == 1


def wide_batch(size: int) -> list[tuple[str, UserLoginRow]]:
    """Rows of about 650 bytes of COPY text each: 10,000 are a 6.5 MB message, more than the
    socket buffers of both ends hold."""
    wide = row("u")._replace(masked_ip="i" * 250, masked_device_id="d" * 250)
    return [(f"m{i:05}", wide._replace(user_id=f"u{i:05}" + "u" * 110)) for i in range(size)]


def chatty_trigger(db: pg8000.native.Connection, table: str, level: str) -> None:
    """A DBA's audit trigger on ``table`` raising a 1 kB message at ``level`` for each row."""
    db.run(
        "CREATE OR REPLACE FUNCTION chatty() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" RAISE {level} '%', repeat('n', 1000); RETURN NEW; END $$"
    )
    db.run(f"CREATE TRIGGER chatty BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION chatty()")


@pytest.mark.parametrize("level", ["NOTICE", "WARNING"])
@pytest.mark.parametrize("table", ["login_etl_processed_messages", "user_logins"])
def test_a_trigger_raising_a_notice_for_every_row_slows_nothing_down(
    store: PostgresLoginStore, tables: pg8000.native.Connection, table: str, level: str
) -> None:
    """10 MB of NOTICEs or WARNINGs during a 6.5 MB batch: the batch's message is written
    whole before its answers are read, so the server must not send them (it would block on
    a full line, and stop reading the rest of the message); the line keeps its order."""
    db = tables
    chatty_trigger(db, table, level)
    assert store.write(wide_batch(10_000), deadline_in(60)).written == 10_000
    assert store.write([("n1", row("v1"))]).written == 1
    assert count(db, "SELECT count(*) FROM user_logins") == 10_001


def test_a_flood_of_info_the_server_always_sends_ends_by_the_deadline(
    store: PostgresLoginStore, tables: pg8000.native.Connection
) -> None:
    """INFO is sent whatever the client asks: 10 MB of it during the ledger's COPY may fill
    the line both ways. Whatever happens, the batch is written whole, or it fails by its
    deadline with nothing committed, and the next write goes through."""
    db = tables
    chatty_trigger(db, "login_etl_processed_messages", "INFO")
    remaining_s = MARGIN_S + 4
    started = time.monotonic()
    try:
        written = store.write(wide_batch(10_000), deadline_in(remaining_s)).written
    except (pg8000.native.DatabaseError, pg8000.native.InterfaceError, OSError):
        written = 0
    assert time.monotonic() - started <= remaining_s - MARGIN_S + END_BACKEND_TIMEOUT_S
    assert count(db, "SELECT count(*) FROM user_logins") == written
    assert count(db, "SELECT count(*) FROM login_etl_processed_messages") == written
    db.run("DROP TRIGGER chatty ON login_etl_processed_messages")
    assert store.write([("n1", row("v1"))]).written == 1


# --- the table's own unique constraint ---------------------------------------------------------


def store_in_order(store: PostgresLoginStore) -> None:
    """The store's connection answers the next statement with its own answer."""
    session = store._session
    assert session is not None
    assert session.conn.run("SELECT 'next', 42") == [["next", 42]]


def rows_per_user(db: pg8000.native.Connection) -> dict[str, int]:
    return {r[0]: r[1] for r in db.run("SELECT user_id, count(*) FROM user_logins GROUP BY 1")}


def test_a_unique_violation_of_the_table_is_a_refused_row_not_a_redelivery(
    db: pg8000.native.Connection, store: PostgresLoginStore
) -> None:
    """user_logins' own UNIQUE: the rows' COPY raises 23505, the code a redelivery gets from
    the ledger. The message is reported refused, never acknowledged as a duplicate."""
    given_table(db, extra="UNIQUE")
    db.run("INSERT INTO user_logins (user_id) VALUES ('taken')")  # by another writer
    result = store.write([("m1", row("taken")), ("m2", row("free"))])
    assert result.rejected == {"m1": "23505"}
    assert result.duplicates == 0
    assert ledger(db) == set()  # nothing of that attempt stays
    store_in_order(store)
    assert store.write([("m2", row("free"))]).written == 1
    assert ledger(db) == {"m2"}
    assert rows_per_user(db) == {"taken": 1, "free": 1}


def test_a_redelivered_id_beside_a_row_the_table_refuses(
    db: pg8000.native.Connection, store: PostgresLoginStore
) -> None:
    """The ledger refuses the message (m1 is a redelivery); then, in the second transaction,
    the rows' COPY refuses m2 by user_logins' own UNIQUE: m2 is reported, m1 is not written
    again."""
    given_table(db, extra="UNIQUE")
    assert store.write([("m1", row("u1"))]).written == 1
    result = store.write([("m1", row("u1")), ("m2", row("u1")), ("m3", row("u3"))])
    assert result.rejected == {"m2": "23505"}
    store_in_order(store)
    assert store.write([("m1", row("u1")), ("m3", row("u3"))]).duplicates == 1
    assert rows_per_user(db) == {"u1": 1, "u3": 1}
    assert ledger(db) == {"m1", "m3"}


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


# --- a DBA's tables, triggers and constraints ---------------------------------------------


def trigger(db: pg8000.native.Connection, name: str, body: str, when: str = "BEFORE") -> None:
    """A DBA's row trigger on user_logins running ``body`` (PL/pgSQL) for each new row."""
    db.run(
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql"
        f" AS $$ BEGIN {body} END $$"
    )
    db.run(
        f"CREATE TRIGGER {name} {when} INSERT ON user_logins FOR EACH ROW EXECUTE FUNCTION {name}()"
    )


def test_a_trigger_refusing_one_row_with_plpgsqls_default_sqlstate_fails_only_that_row(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    given_table(db)
    trigger(db, "no_xx", "IF NEW.locale = 'XX' THEN RAISE EXCEPTION 'blocked'; END IF; RETURN NEW;")
    messages = [
        QueueMessage(f"m{i}", login_body(f"u{i}").replace('"RU"', '"XX"' if i == 1 else '"RU"'))
        for i in range(3)
    ]

    outcome = process_batch(messages, upper_tokens, store, DAY)

    assert [f.message_id for f in outcome.failures] == ["m1"]
    assert outcome.written == 2


def test_isolating_one_refused_row_fits_in_the_timeout_the_write_fits_in(
    db: pg8000.native.Connection,
) -> None:
    given_table(db, table_extra=", CHECK (locale <> 'XX')")
    trigger(db, "slow_row", "PERFORM pg_sleep(0.01); RETURN NEW;")  # a slow disk, an audit
    store = PostgresLoginStore(params(statement_timeout_ms=3_500))
    try:
        # The write of 200 rows (2 s of triggers) fits in the 3.5 s timeout...
        assert store.write([(f"w{i}", row(f"w{i}")) for i in range(200)]).written == 200
        db.run("TRUNCATE user_logins")
        # ...and so does the same write with one refused row, until it is isolated.
        batch = [(f"m{i:03}", row(f"u{i}", "XX" if i == 199 else "RU")) for i in range(200)]
        result = store.write(batch)
    finally:
        store.close()
    assert result.rejected == {"m199": "23514"}


def test_an_existing_table_with_a_text_app_version_takes_the_rows(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    """The analysts' view (an integer decode) is optional: without it, rows still go in."""
    db.run(GIVEN_TABLE_TEXT_VERSION)
    assert store.write([("m1", row("u1"))]).written == 1
    assert db.run("SELECT to_regclass('user_logins_decoded')") == [[None]]


GIVEN_TABLE_TEXT_VERSION = (
    "CREATE TABLE user_logins(user_id varchar(128), device_type varchar(32),"
    " masked_ip varchar(256), masked_device_id varchar(256), locale varchar(32),"
    " app_version text, create_date date)"
)


def test_an_existing_table_of_odd_shape_is_used_as_it_is(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    """Other column order, bigint app_version, an identity, a NOT NULL column with a default,
    a generated column, a CHECK of the DBA's: one row refused, the rest written."""
    db.run(
        "CREATE TABLE user_logins(id bigint GENERATED ALWAYS AS IDENTITY, create_date date,"
        " app_version bigint, locale varchar(32) CHECK (locale <> 'XX'),"
        " masked_device_id varchar(256), masked_ip varchar(256), device_type varchar(32),"
        " user_id varchar(128), ingested_at timestamptz NOT NULL DEFAULT now(),"
        " version_label text GENERATED ALWAYS AS ('v' || app_version::text) STORED)"
    )
    result = store.write([("m1", row("u1")), ("m2", row("u2", "XX")), ("m3", row("u3"))])
    assert result.rejected == {"m2": "23514"}
    assert store.write([("m1", row("u1")), ("m3", row("u3"))]).written == 2
    assert db.run("SELECT user_id, version_label FROM user_logins ORDER BY id") == [
        ["u1", "v2003000"],
        ["u3", "v2003000"],
    ]


def test_a_refusal_raised_only_under_copy_is_never_acknowledged(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    """A trigger that refuses a row only when it arrives by COPY: the isolation (INSERT)
    cannot reproduce it, so nothing is acknowledged and the whole batch is retried."""
    given_table(db)
    trigger(
        db,
        "copy_only",
        "IF NEW.locale = 'XX' AND current_query() ILIKE '%COPY user_logins%' THEN"
        " RAISE EXCEPTION 'no' USING ERRCODE = 'check_violation'; END IF; RETURN NEW;",
    )
    with pytest.raises(UnattributedRefusalError):
        store.write([("m1", row("u1")), ("m2", row("u2", "XX"))])
    assert count(db, "SELECT count(*) FROM user_logins") == 0
    assert count(db, "SELECT count(*) FROM login_etl_processed_messages") == 0


def test_a_deferred_constraint_trigger_is_attributed_to_its_row(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    given_table(db)
    db.run(
        "CREATE OR REPLACE FUNCTION late_no_xx() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF NEW.locale = 'XX' THEN RAISE EXCEPTION 'no' USING ERRCODE = 'check_violation';"
        " END IF; RETURN NULL; END $$"
    )
    db.run(
        "CREATE CONSTRAINT TRIGGER late_no_xx AFTER INSERT ON user_logins"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION late_no_xx()"
    )
    result = store.write([("m1", row("u1")), ("m2", row("u2", "XX")), ("m3", row("u3"))])
    assert result.rejected == {"m2": "23514"}
    assert count(db, "SELECT count(*) FROM login_etl_processed_messages") == 0


def test_a_not_null_column_of_the_dbas_own_acknowledges_nothing(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    """Every row is refused (23502): all reported, so all retried and dead-lettered, none
    acknowledged. (A schema misfit, not a row's fault; see the report.)"""
    given_table(db, table_extra=", tenant text NOT NULL")
    messages = [QueueMessage(f"m{i}", login_body(f"u{i}")) for i in range(3)]
    outcome = process_batch(messages, upper_tokens, store, DAY)
    assert {f.message_id for f in outcome.failures} == {"m0", "m1", "m2"}
    assert count(db, "SELECT count(*) FROM login_etl_processed_messages") == 0


def test_a_row_refused_because_of_a_concurrent_writer_is_the_only_one_reported(
    db: pg8000.native.Connection,
) -> None:
    """UNIQUE(user_id) and another session holding u1 uncommitted while the batch writes:
    the batch waits, that session commits, u1's message is refused and u2's written."""
    given_table(db, extra="UNIQUE")
    warm = PostgresLoginStore(params())
    warm.write([("warm", row("u0"))])
    warm.close()
    other = another_application()
    other.run("START TRANSACTION")
    other.run("INSERT INTO user_logins (user_id) VALUES ('u1')")
    outcome: dict[str, Any] = {}
    store = PostgresLoginStore(params())

    def deliver() -> None:
        messages = [QueueMessage("m1", login_body("u1")), QueueMessage("m2", login_body("u2"))]
        try:
            outcome["ok"] = process_batch(messages, upper_tokens, store, DAY)
        except Exception as error:
            outcome["error"] = error

    writer = threading.Thread(target=deliver)
    writer.start()
    wait_for(lambda: waiting_on_a_lock(db) > 0 or not writer.is_alive(), "the batch waits")
    other.run("COMMIT")
    other.close()
    writer.join(timeout=120)
    store.close()

    assert "error" not in outcome, outcome
    assert [f.message_id for f in outcome["ok"].failures] == ["m1"]
    assert sorted(r[0] for r in db.run("SELECT message_id FROM login_etl_processed_messages")) == [
        "m2",
        "warm",
    ]


def test_ten_thousand_wide_rows_with_all_but_one_refused(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    """The whole batch travels in one transaction-local setting (~7 MB here, every field at
    its column's limit) and 9,999 rows are refused one by one: no size limit, no lock table."""
    given_table(db, table_extra=", CHECK (locale <> 'XX')")

    def wide(i: int) -> UserLoginRow:
        return UserLoginRow(
            f"{i:05}".ljust(128, "u"), "d" * 32, "i" * 256, "v" * 256,
            "RU" if i == 5_000 else "XX", 2_003_000, DAY,
        )  # fmt: skip

    rows = [(f"m{i:05}", wide(i)) for i in range(10_000)]
    result = store.write(rows)
    assert len(result.rejected) == 9_999
    assert "m05000" not in result.rejected
    assert store.write([rows[5_000]]).written == 1
