from __future__ import annotations

import contextlib
import threading
import time
from datetime import date

import pg8000.native
import pytest

from login_etl.adapters.postgres.connection import connect
from login_etl.adapters.postgres.store import PostgresLoginStore
from login_etl.config import Settings
from login_etl.deadline import Deadline
from login_etl.domain.models import UserLoginRow
from login_etl.runtime import connection_params

DAY = date(2026, 11, 24)
GIVEN_COLUMNS = [
    ("user_id", "character varying", 128),
    ("device_type", "character varying", 32),
    ("masked_ip", "character varying", 256),
    ("masked_device_id", "character varying", 256),
    ("locale", "character varying", 32),
    ("app_version", "integer", None),
    ("create_date", "date", None),
]


def row(user_id: str = "u1", locale: str | None = "RU") -> UserLoginRow:
    return UserLoginRow(user_id, "ios", "mip", "mdev", locale, 2_003_000, DAY)


@pytest.fixture
def store(db: pg8000.native.Connection) -> PostgresLoginStore:
    return PostgresLoginStore(connection_params(Settings.from_env()))


def columns(db: pg8000.native.Connection) -> list[tuple[str, str, int | None]]:
    return [
        tuple(r)
        for r in db.run(
            "SELECT column_name, data_type, character_maximum_length"
            " FROM information_schema.columns WHERE table_name = 'user_logins'"
            " ORDER BY ordinal_position"
        )
    ]


def test_creates_exactly_the_given_table(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    store.write([("m1", row())])
    assert columns(db) == GIVEN_COLUMNS


def test_uses_an_existing_table_as_it_is(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    db.run(
        "CREATE TABLE user_logins(user_id varchar(128), device_type varchar(32),"
        " masked_ip varchar(256), masked_device_id varchar(256), locale varchar(32),"
        " app_version integer, create_date date)"
    )
    db.run("INSERT INTO user_logins (user_id) VALUES ('already here')")
    store.write([("m1", row())])
    assert columns(db) == GIVEN_COLUMNS
    assert db.run("SELECT count(*) FROM user_logins")[0][0] == 2


def test_values_round_trip_including_copy_special_characters(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    tricky = "tab\there\nnew line\\back\rslash \\N"
    result = store.write([("m1", row(tricky)), ("m2", row("u2", locale=None))])
    assert (result.written, result.duplicates, result.rejected) == (2, 0, {})
    rows = db.run("SELECT user_id, locale, app_version, create_date FROM user_logins ORDER BY 1")
    assert rows == [[tricky, "RU", 2_003_000, DAY], ["u2", None, 2_003_000, DAY]]


def test_a_message_id_is_written_once(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    assert store.write([("m1", row()), ("m2", row())]).written == 2
    result = store.write([("m1", row()), ("m3", row())])
    assert (result.written, result.duplicates) == (1, 1)
    assert db.run("SELECT count(*) FROM user_logins")[0][0] == 3
    assert db.run("SELECT count(*) FROM login_etl_processed_messages")[0][0] == 3


def test_refused_rows_are_isolated_and_nothing_is_committed(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    rows = [(f"m{i}", row(f"u{i}")) for i in range(37)]
    rows[5] = ("bad1", row("x" * 129))  # longer than varchar(128)
    rows[30] = ("bad2", row("y" * 200))
    result = store.write(rows)
    assert result.rejected == {"bad1": "22001", "bad2": "22001"}
    assert db.run("SELECT count(*) FROM user_logins")[0][0] == 0
    assert db.run("SELECT count(*) FROM login_etl_processed_messages")[0][0] == 0
    retry = store.write([r for r in rows if r[0] not in result.rejected])
    assert (retry.written, retry.rejected) == (35, {})


def test_reconnects_after_the_connection_is_lost(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    store.write([("m1", row())])
    db.run(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'login-etl' AND pid <> pg_backend_pid()"
    )
    with pytest.raises((pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError)):
        store.write([("m2", row())])
    assert store.write([("m2", row())]).written == 1


def test_a_prune_that_gave_up_waiting_leaves_a_connection_the_next_write_can_use(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    """The last write began with 3 s left (its read timeout, 1 s, stays on the socket);
    the next invocation prunes while a DBA holds the ledger for 2 s; the one after writes."""
    ends = time.monotonic() + 3.0
    store.write([("m1", row())], Deadline(lambda: int((ends - time.monotonic()) * 1000)))
    holder = connect(connection_params(Settings.from_env()))
    holder.run("START TRANSACTION")
    holder.run("LOCK TABLE login_etl_processed_messages IN ACCESS EXCLUSIVE MODE")
    release = threading.Timer(2.0, holder.run, ("COMMIT",))
    release.start()
    try:
        with contextlib.suppress(Exception):  # giving up is fine, with 60 s left or not
            store.prune(3600, 1_000, lambda: True, Deadline(lambda: 60_000))
    finally:
        release.join()
        holder.close()

    assert store.write([("m2", row())], Deadline(lambda: 60_000)).written == 1


def test_decoded_view_gives_the_dotted_version(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    store.write([("m1", row())])
    assert db.run("SELECT app_version_text FROM user_logins_decoded") == [["2.3.0"]]


def test_a_session_carries_no_state_after_writes(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    """What lets RDS Proxy multiplex: after the schema check, a write, and the isolation of a
    refused row, nothing outlives a transaction (settings, prepared statements, locks)."""
    store.write([("m1", row())])
    store.write([("m2", row()), ("bad", row("x" * 129))])  # the isolation path too
    store.prune(0, 10, lambda: True)
    conn = store._session.conn  # type: ignore[union-attr]  # the store's own session
    assert conn.run("SELECT name FROM pg_settings WHERE source = 'session'") == []
    assert conn.run("SELECT count(*) FROM pg_prepared_statements") == [[0]]
    assert conn.run("SELECT count(*) FROM pg_cursors") == [[0]]
    locks = "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'"
    assert conn.run(locks) == [[0]]
    assert conn.run("SHOW statement_timeout") == [["0"]]  # set per transaction, gone after
    assert conn.run("SHOW lock_timeout") == [["0"]]
    assert conn.run("SHOW idle_in_transaction_session_timeout") == [["0"]]
