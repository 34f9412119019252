"""A large batch's write on real Postgres: refusals anywhere in it, a session lost or a lock
held in the middle of it, ids already recorded or contested. Whatever fails, a message is
acknowledged only if a COMMIT holds its row, and every message is written exactly once in the
end.
"""

from __future__ import annotations

import threading
import time

import pg8000.native
import pytest

from login_etl.adapters.postgres.connection import connect
from login_etl.adapters.postgres.store import PostgresLoginStore
from login_etl.domain.errors import Reason
from login_etl.domain.models import QueueMessage
from login_etl.pipeline import BatchOutcome, process_batch
from tests.pipeline_helpers import upper_tokens
from tests.postgres_helpers import (
    DAY,
    batch,
    count,
    function_sessions,
    given_table,
    ledger,
    params,
    wait_for,
    waiting_on_a_lock,
    write,
)

SIZE = 2_300
MIDDLE = 1_200
STATEMENT_TIMEOUT_MS = 1_000


def test_rows_refused_in_the_middle_and_at_the_end_are_isolated_and_the_rest_written(
    db: pg8000.native.Connection,
) -> None:
    given_table(db, table_extra=", CHECK (locale IS DISTINCT FROM 'XX')")
    messages = batch(SIZE, 1, {MIDDLE: "XX", SIZE - 1: "XX"})

    outcome = write(messages)

    refused = [messages[MIDDLE].message_id, messages[SIZE - 1].message_id]
    assert [f.message_id for f in outcome.failures] == refused
    assert {f.reason for f in outcome.failures} == {Reason.REJECTED_BY_DATABASE}
    assert outcome.written == SIZE - 2
    assert count(db, "SELECT count(*) FROM user_logins") == SIZE - 2
    assert ledger(db) == {m.message_id for m in messages} - set(refused)


def test_a_refusal_at_commit_of_a_large_batch_is_isolated(db: pg8000.native.Connection) -> None:
    """A deferred foreign key: the COPY took every row, the COMMIT fails."""
    messages = batch(SIZE, 2)
    users = [m.body.split('"user_id": "', 1)[1].split('"', 1)[0] for m in messages]
    db.run("CREATE TABLE known_users(user_id varchar(128) PRIMARY KEY)")  # the db fixture drops it
    for position, user in enumerate(users):
        if position != MIDDLE:
            db.run("INSERT INTO known_users VALUES (:u)", u=user)
    given_table(db, extra="REFERENCES known_users DEFERRABLE INITIALLY DEFERRED")

    outcome = write(messages)

    assert [f.message_id for f in outcome.failures] == [messages[MIDDLE].message_id]
    assert count(db, "SELECT count(*) FROM user_logins") == SIZE - 1
    assert messages[MIDDLE].message_id not in ledger(db)


def test_a_session_lost_during_the_copy_commits_nothing_and_the_retry_writes_once(
    tables: pg8000.native.Connection,
) -> None:
    """The COPY waits on a lock the test holds; its session is then ended from outside."""
    db = tables
    messages = batch(SIZE, 3)
    holder = connect(params())
    holder.run("START TRANSACTION; LOCK TABLE user_logins IN SHARE MODE")
    errors: list[BaseException] = []

    def write_and_fail() -> None:
        try:
            write(messages)
        except BaseException as error:
            errors.append(error)

    writer = threading.Thread(target=write_and_fail)
    writer.start()
    try:
        wait_for(lambda: waiting_on_a_lock(db) == 1, "the COPY waits on the table")
        db.run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'login-etl' AND wait_event_type = 'Lock'"
        )
        writer.join(timeout=120)
    finally:
        holder.run("ROLLBACK")
        holder.close()
    # A lost line (pg8000's InterfaceError, or the socket's OSError: transaction.CONNECTION_LOST,
    # whichever the reset reaches first) or the server's error: the invocation fails whole.
    assert len(errors) == 1
    assert isinstance(
        errors[0], pg8000.native.InterfaceError | pg8000.native.DatabaseError | OSError
    )
    assert count(db, "SELECT count(*) FROM user_logins") == 0
    assert ledger(db) == set()

    outcome = write(messages)  # the event source mapping's retry

    assert (outcome.written, outcome.failures) == (SIZE, [])
    assert count(db, "SELECT count(*) FROM user_logins") == SIZE


def test_a_failure_while_masking_begins_no_transaction(tables: pg8000.native.Connection) -> None:
    db = tables
    messages = batch(SIZE, 4)
    calls = 0

    def mask_that_fails(value: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 2 * MIDDLE:
            raise RuntimeError("the mask failed")
        return value.upper()

    with pytest.raises(RuntimeError, match="the mask failed"):
        write(messages, mask_that_fails)
    assert count(db, "SELECT count(*) FROM user_logins") == 0
    assert ledger(db) == set()
    wait_for(lambda: function_sessions(db) == 0, "the store's session is closed")

    assert write(messages).written == SIZE


def test_a_batch_masked_for_longer_than_the_statement_timeout_is_still_written(
    tables: pg8000.native.Connection,
) -> None:
    """Masking is CPU work of ours (a throttled 128 MB Lambda has a fraction of a core): it
    happens before the transaction, never counted against the database's timeout."""
    db = tables
    messages = batch(SIZE, 21)
    calls = 0

    def slow_mask(value: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 2 * MIDDLE:
            time.sleep(3 * STATEMENT_TIMEOUT_MS / 1000)
        return value.upper()

    outcome = write(messages, slow_mask, params(statement_timeout_ms=STATEMENT_TIMEOUT_MS))

    assert (outcome.written, outcome.failures) == (SIZE, [])
    assert count(db, "SELECT count(*) FROM user_logins") == SIZE


def test_a_write_waits_for_no_lock_longer_than_the_statement_timeout(
    tables: pg8000.native.Connection,
) -> None:
    """A table held by a DBA's ALTER fails the invocation (retried) instead of holding the
    batch's ledger ids."""
    db = tables
    holder = connect(params())
    try:
        holder.run("START TRANSACTION")
        holder.run("LOCK TABLE user_logins IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(pg8000.native.DatabaseError) as raised:
            write(batch(SIZE, 22), connect_as=params(statement_timeout_ms=STATEMENT_TIMEOUT_MS))
        assert raised.value.args[0]["C"] == "57014"  # query_canceled: the statement timeout
        holder.run("ROLLBACK")
    finally:
        holder.close()
    assert count(db, "SELECT count(*) FROM user_logins") == 0
    assert ledger(db) == set()


@pytest.mark.parametrize("written_before", ["head", "every third"])
def test_ids_already_in_the_ledger_are_left_out_of_the_copy(
    tables: pg8000.native.Connection, written_before: str
) -> None:
    db = tables
    first, second = batch(SIZE, 5), batch(SIZE, 6)
    before = first[: MIDDLE + 1] if written_before == "head" else first[::3]
    write(before)

    outcome = write(second + first)

    assert (outcome.written, outcome.duplicates) == (2 * SIZE - len(before), len(before))
    assert count(db, "SELECT count(*) FROM user_logins") == 2 * SIZE
    assert count(db, "SELECT count(DISTINCT user_id) FROM user_logins") == 2 * SIZE
    assert ledger(db) == {m.message_id for m in first + second}


@pytest.mark.parametrize("other_batch", ["commits", "rolls back"])
def test_an_id_another_batch_holds_is_settled_by_that_batch(
    tables: pg8000.native.Connection, other_batch: str
) -> None:
    """Another transaction inserted one of the ids and has not finished: this batch waits on
    it, then counts the message as written by the other (commit) or writes it (rollback)."""
    db = tables
    messages = batch(SIZE, 7)
    contested = messages[MIDDLE].message_id
    db.run("START TRANSACTION")
    db.run("INSERT INTO login_etl_processed_messages (message_id) VALUES (:id)", id=contested)
    result: list[BatchOutcome] = []
    writer = threading.Thread(target=lambda: result.append(write(messages)))
    writer.start()
    # Seen from another session: within a transaction, pg_stat_activity is read only once.
    monitor = connect(params())
    try:
        wait_for(lambda: waiting_on_a_lock(monitor) == 1, "the batch waits on the contested id")
    finally:
        monitor.close()
    db.run("COMMIT" if other_batch == "commits" else "ROLLBACK")
    writer.join(timeout=120)

    outcome = result[0]
    assert outcome.failures == []
    if other_batch == "commits":
        assert (outcome.written, outcome.duplicates) == (SIZE - 1, 1)
        assert count(db, "SELECT count(*) FROM user_logins") == SIZE - 1
    else:
        assert (outcome.written, outcome.duplicates) == (SIZE, 0)
        assert count(db, "SELECT count(*) FROM user_logins") == SIZE
    assert ledger(db) == {m.message_id for m in messages}


ODD_IDS = ["it's", 'a"b', "back\\slash", "$$", "$login_etl_ids$", "é-ü", "tab\there", "x" * 128]


@pytest.mark.parametrize("size", [len(ODD_IDS), SIZE])
def test_odd_message_ids_reach_the_ledger_intact(
    tables: pg8000.native.Connection, size: int
) -> None:
    """Each id is recorded as it is, and found again on a redelivery."""
    db = tables
    messages = batch(SIZE, 8)[: size - len(ODD_IDS)] + [
        QueueMessage(odd, m.body) for odd, m in zip(ODD_IDS, batch(SIZE, 9), strict=False)
    ]
    assert write(messages).written == len(messages)
    assert ledger(db) == {m.message_id for m in messages}
    again = write(messages)  # a redelivery: the ids are found in the ledger
    assert (again.written, again.duplicates) == (0, len(messages))


def test_the_store_reconnects_after_its_session_was_ended(tables: pg8000.native.Connection) -> None:
    """A failover or a DBA ends the container's idle session: the next batch reconnects."""
    db = tables
    store = PostgresLoginStore(params())
    try:
        assert process_batch(batch(10, 10), upper_tokens, store, DAY).written == 10
        db.run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'login-etl' AND pid <> pg_backend_pid()"
        )
        with pytest.raises((pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError)):
            process_batch(batch(10, 11), upper_tokens, store, DAY)
        assert process_batch(batch(10, 11), upper_tokens, store, DAY).written == 10
    finally:
        store.close()
    assert count(db, "SELECT count(*) FROM user_logins") == 20
