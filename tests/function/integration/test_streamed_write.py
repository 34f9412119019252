"""The streamed write on real Postgres: what writing while the rows are masked changes.

The writer thread runs the ledger insert and a COPY fed chunk by chunk while the pipeline
masks; these batches span three chunks, so every failure below happens with rows already
sent. Whatever fails, a message is acknowledged only if a COMMIT holds its row, and every
message is written exactly once in the end.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from datetime import date

import pg8000.native
import pytest

from login_etl.adapters.postgres_connection import connect
from login_etl.adapters.postgres_store import (
    STREAM_CHUNK_ROWS,
    STREAM_TAIL_ROWS,
    PostgresLoginStore,
    ensure_schema,
)
from login_etl.domain.errors import Reason
from login_etl.domain.models import QueueMessage
from login_etl.domain.redrive_claim import ClaimVerifier
from login_etl.pipeline import BatchOutcome, process_batch
from login_etl_cli.sample_data import generate_labelled
from tests.function.integration.test_write_guarantees import count, given_table, params

DAY = date(2026, 11, 24)
NO_CLAIMS = ClaimVerifier([])
SIZE = 2 * STREAM_CHUNK_ROWS + 300  # three chunks
MIDDLE = STREAM_CHUNK_ROWS + 200  # a row of the second chunk: the first one was sent


def batch(seed: int, locales: dict[int, str] | None = None) -> list[QueueMessage]:
    """SIZE valid logins; ``locales`` overrides the locale of some (by position)."""
    logins = [json.loads(b) for b, _ in generate_labelled(SIZE, seed, malformed_ratio=0)]
    for position, locale in (locales or {}).items():
        logins[position]["locale"] = locale
    return [QueueMessage(f"s{seed}-{i:05}", json.dumps(x)) for i, x in enumerate(logins)]


def ledger(db: pg8000.native.Connection) -> set[str]:
    return {r[0] for r in db.run("SELECT message_id FROM login_etl_processed_messages")}


def write(messages: list[QueueMessage], mask: Callable[[str], str] = str.upper) -> BatchOutcome:
    """process_batch on a fresh store; Python's switch interval is left as it was found."""
    store = PostgresLoginStore(params())
    interval = sys.getswitchinterval()
    try:
        return process_batch(messages, mask, NO_CLAIMS, store, DAY)
    finally:
        store.close()
        assert sys.getswitchinterval() == interval


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll a condition (never a fixed sleep): the machine may be slow."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def store_backends(db: pg8000.native.Connection) -> int:
    """Sessions of the function other than the test's own (both say application login-etl)."""
    return count(
        db,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'login-etl' AND pid <> pg_backend_pid()",
    )


def copying(db: pg8000.native.Connection) -> bool:
    """Whether the function's session is running its COPY (the ledger insert is done)."""
    return (
        count(
            db,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'login-etl'"
            " AND state = 'active' AND query LIKE 'COPY user_logins%'",
        )
        == 1
    )


def waiting_on_a_lock(monitor: pg8000.native.Connection) -> int:
    return count(
        monitor,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'login-etl' AND wait_event_type = 'Lock'",
    )


@pytest.fixture
def tables(db: pg8000.native.Connection) -> pg8000.native.Connection:
    ensure_schema(db)
    return db


def test_a_row_refused_in_the_middle_of_the_copy_is_isolated_and_the_rest_written(
    db: pg8000.native.Connection,
) -> None:
    given_table(db, table_extra=", CHECK (locale IS DISTINCT FROM 'XX')")
    messages = batch(1, {MIDDLE: "XX", SIZE - 1: "XX"})

    outcome = write(messages)

    refused = [messages[MIDDLE].message_id, messages[SIZE - 1].message_id]
    assert [f.message_id for f in outcome.failures] == refused
    assert {f.reason for f in outcome.failures} == {Reason.REJECTED_BY_DATABASE}
    assert outcome.written == SIZE - 2
    assert count(db, "SELECT count(*) FROM user_logins") == SIZE - 2
    assert ledger(db) == {m.message_id for m in messages} - set(refused)


def test_a_refusal_at_commit_after_a_streamed_copy_is_isolated(
    db: pg8000.native.Connection,
) -> None:
    """A deferred foreign key: the COPY took every chunk, the COMMIT fails."""
    messages = batch(2)
    users = [json.loads(m.body)["user_id"] for m in messages]
    db.run("CREATE TABLE known_users(user_id varchar(128) PRIMARY KEY)")  # the db fixture drops it
    try:
        for position, user in enumerate(users):
            if position != MIDDLE:
                db.run("INSERT INTO known_users VALUES (:u)", u=user)
        given_table(db, extra="REFERENCES known_users DEFERRABLE INITIALLY DEFERRED")

        outcome = write(messages)

        assert [f.message_id for f in outcome.failures] == [messages[MIDDLE].message_id]
        assert count(db, "SELECT count(*) FROM user_logins") == SIZE - 1
        assert messages[MIDDLE].message_id not in ledger(db)
    finally:
        db.run("DROP VIEW IF EXISTS user_logins_decoded")
        db.run("DROP TABLE IF EXISTS user_logins, known_users")


def test_a_connection_lost_mid_stream_commits_nothing_and_the_retry_writes_once(
    tables: pg8000.native.Connection,
) -> None:
    db = tables
    messages = batch(3)
    calls = 0

    def mask_that_kills_the_session(value: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 2 * MIDDLE:  # two masks a row: the second chunk is being made
            wait_for(lambda: copying(db), "the first chunk is in the COPY")
            db.run(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'login-etl' AND pid <> pg_backend_pid()"
            )
            wait_for(lambda: store_backends(db) == 0, "the session is gone")
        return value.upper()

    with pytest.raises((pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError)):
        write(messages, mask_that_kills_the_session)
    assert count(db, "SELECT count(*) FROM user_logins") == 0
    assert ledger(db) == set()

    outcome = write(messages)  # the event source mapping's retry

    assert (outcome.written, outcome.failures) == (SIZE, [])
    assert count(db, "SELECT count(*) FROM user_logins") == SIZE


def test_a_failure_while_masking_mid_stream_commits_nothing(
    tables: pg8000.native.Connection,
) -> None:
    db = tables
    messages = batch(4)
    calls = 0

    def mask_that_fails(value: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 2 * MIDDLE:
            wait_for(lambda: copying(db), "the first chunk is in the COPY")
            raise RuntimeError("the mask failed")
        return value.upper()

    with pytest.raises(RuntimeError, match="the mask failed"):
        write(messages, mask_that_fails)
    assert count(db, "SELECT count(*) FROM user_logins") == 0
    assert ledger(db) == set()
    wait_for(
        lambda: not [t for t in threading.enumerate() if t.name == "login-etl-writer"],
        "the writer thread has ended",
    )
    wait_for(lambda: store_backends(db) == 0, "the abandoned session is gone")

    assert write(messages).written == SIZE


@pytest.mark.parametrize("written_before", ["head", "tail"])
def test_ids_already_in_the_ledger_are_left_out_of_the_stream(
    tables: pg8000.native.Connection, written_before: str
) -> None:
    """Redelivered ids in the first chunks, or every third one in the smaller chunks of the
    tail (``STREAM_TAIL_CHUNK_ROWS``): exactly their rows are left out."""
    db = tables
    first, second = batch(5), batch(6)
    if written_before == "head":
        before = first[: STREAM_CHUNK_ROWS + 1]
        redelivery = first + second  # new messages after it
    else:
        before = first[-STREAM_TAIL_ROWS::3]
        redelivery = second + first  # the batch's last rows, one in three already written
    write(before)

    outcome = write(redelivery)

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
    messages = batch(7)
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
    """The ids travel inside the ledger statement (dollar-quoted), or as a parameter when one
    holds the quoting tag: either way each is recorded as it is, and found again."""
    db = tables
    messages = batch(8)[: size - len(ODD_IDS)] + [
        QueueMessage(odd, m.body) for odd, m in zip(ODD_IDS, batch(9), strict=False)
    ]
    for with_the_tag in (messages, [m for m in messages if m.message_id != "$login_etl_ids$"]):
        db.run("TRUNCATE user_logins, login_etl_processed_messages")
        assert write(with_the_tag).written == len(with_the_tag)
        assert ledger(db) == {m.message_id for m in with_the_tag}
        again = write(with_the_tag)  # a redelivery: the ids are found in the ledger
        assert (again.written, again.duplicates) == (0, len(with_the_tag))
