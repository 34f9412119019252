"""COPYs in one round trip (``run_with_copy``): the line stays in order whatever the server says.

The query and all its COPY data go out in one message that ends with a Sync, which the simple
protocol answers with one more ReadyForQuery; a statement that took that answer for its own
would read the previous one's results, or wait forever. Data the server never asked for (a
query refused before its COPY) must be dropped, not read as the next statement. Every case
is followed by a query whose answer is checked.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pg8000.native
import pytest

from login_etl.adapters.postgres.connection import (
    CopyReply,
    close_quietly,
    connect,
    run_with_copy,
)
from login_etl.adapters.postgres.transaction import Session, transaction
from login_etl.deadline import Deadline
from tests.postgres_helpers import params

UNIQUE_VIOLATION = "23505"


@pytest.fixture
def conn(db: pg8000.native.Connection) -> Iterator[pg8000.native.Connection]:
    """A connection of the function's kind, with a table of unique keys of its own."""
    made = connect(params())
    made.run("CREATE TEMPORARY TABLE keys (k text PRIMARY KEY)")
    yield made
    close_quietly(made)  # some tests end its server process


def in_order(conn: pg8000.native.Connection) -> None:
    """The next statement gets its own answer."""
    assert conn.run("SELECT 'next', 42") == [["next", 42]]


def keys(conn: pg8000.native.Connection) -> list[str]:
    return [row[0] for row in conn.run("SELECT k FROM keys ORDER BY k")]


def test_a_copy_writes_its_rows(conn: pg8000.native.Connection) -> None:
    run_with_copy(conn, "COPY keys FROM STDIN", [b"a\nb\n"])
    in_order(conn)
    assert keys(conn) == ["a", "b"]


def test_statements_around_the_copy_run_in_the_same_message(
    conn: pg8000.native.Connection,
) -> None:
    conn.run("START TRANSACTION")
    run_with_copy(
        conn, "SET LOCAL statement_timeout = 5000; COPY keys FROM STDIN; COMMIT", [b"c\n"]
    )
    in_order(conn)
    assert conn.run("SHOW statement_timeout") == [["0"]]  # local to the committed transaction
    assert keys(conn) == ["c"]


def test_a_copy_the_server_refuses_midway_leaves_the_line_in_order(
    conn: pg8000.native.Connection,
) -> None:
    conn.run("START TRANSACTION")
    with pytest.raises(pg8000.native.DatabaseError) as refused:
        run_with_copy(conn, "COPY keys FROM STDIN; COMMIT", [b"d\nd\n"])
    assert refused.value.args[0]["C"] == UNIQUE_VIOLATION
    conn.run("ROLLBACK")  # the COMMIT did not run: the transaction was still open, aborted
    in_order(conn)
    assert keys(conn) == []


def test_a_copy_refused_before_its_data_leaves_the_line_in_order(
    conn: pg8000.native.Connection,
) -> None:
    """The data went out with the query: the server drops it, and answers the Sync."""
    with pytest.raises(pg8000.native.DatabaseError):
        run_with_copy(conn, "COPY no_such_table FROM STDIN", [b"e\n"])
    in_order(conn)


def test_a_large_payload_refused_early_leaves_the_line_in_order(
    conn: pg8000.native.Connection,
) -> None:
    """The server refuses at the second line and drops the rest of the data as it comes."""
    payload = b"f\nf\n" + b"".join(b"g%d\n" % i for i in range(200_000))
    with pytest.raises(pg8000.native.DatabaseError):
        run_with_copy(conn, "COPY keys FROM STDIN", [payload])
    in_order(conn)
    run_with_copy(conn, "COPY keys FROM STDIN", [b"h\n"])
    assert keys(conn) == ["h"]


def test_two_copies_and_a_commit_go_in_one_message(conn: pg8000.native.Connection) -> None:
    conn.run("CREATE TEMPORARY TABLE others (k text PRIMARY KEY)")
    conn.run("START TRANSACTION")
    reply = CopyReply()
    run_with_copy(
        conn,
        "COPY keys FROM STDIN; COPY others FROM STDIN; COMMIT",
        [b"a\nb\n", b"c\n"],
        reply,
    )
    assert reply.copies == 2
    in_order(conn)
    assert keys(conn) == ["a", "b"]
    assert conn.run("SELECT k FROM others") == [["c"]]
    assert conn.run("SELECT now() = statement_timestamp()") == [[True]]  # committed


@pytest.mark.parametrize(("duplicate_in", "begun"), [("keys", 1), ("others", 2)])
def test_a_copy_refused_in_a_message_of_two_says_which_and_skips_the_rest(
    conn: pg8000.native.Connection, duplicate_in: str, begun: int
) -> None:
    """The first COPY refused: the server skips the rest of the query and drops the second
    COPY's data as it comes; the second refused: the COMMIT never runs. Either way the
    reply counts the COPYs begun, nothing is written, and the line is in order."""
    conn.run("CREATE TEMPORARY TABLE others (k text PRIMARY KEY)")
    payloads = {"keys": b"a\n", "others": b"b\n"}
    payloads[duplicate_in] = b"d\nd\n"
    conn.run("START TRANSACTION")
    reply = CopyReply()
    with pytest.raises(pg8000.native.DatabaseError) as refused:
        run_with_copy(
            conn,
            "COPY keys FROM STDIN; COPY others FROM STDIN; COMMIT",
            [payloads["keys"], payloads["others"]],
            reply,
        )
    assert refused.value.args[0]["C"] == UNIQUE_VIOLATION
    assert reply.copies == begun
    conn.run("ROLLBACK")
    in_order(conn)
    assert keys(conn) == []
    assert conn.run("SELECT count(*) FROM others") == [[0]]


def deadline_in(seconds: float) -> Deadline:
    ends = time.monotonic() + seconds
    return Deadline(lambda: int((ends - time.monotonic()) * 1000))


def backend_of(conn: pg8000.native.Connection) -> int:
    return int(conn.run("SELECT pg_backend_pid()")[0][0])


def test_a_deferred_begin_rides_with_the_first_copy_and_knows_its_process(
    conn: pg8000.native.Connection,
) -> None:
    session = Session(conn, params())
    with transaction(session, deadline_in(30), deferred=True):
        assert session.backend_pid == 0  # nothing sent yet
        session.copy_in([("COPY keys FROM STDIN", b"i\n")])
        assert session.backend_pid == backend_of(conn)  # known, to end it if the line is lost
        assert conn.run("SHOW statement_timeout") != [["0"]]  # armed in the same message
        session.copy_in([("COPY keys FROM STDIN", b"j\n")], commit=True)
    assert session.backend_pid == 0
    in_order(conn)
    assert keys(conn) == ["i", "j"]


def test_a_first_copy_refused_still_names_its_process_and_rolls_back(
    conn: pg8000.native.Connection,
) -> None:
    conn.run("INSERT INTO keys VALUES ('k')")
    process = backend_of(conn)
    session = Session(conn, params())
    named: list[int] = []

    def first_copy() -> None:
        with transaction(session, None, deferred=True):
            try:
                session.copy_in([("COPY keys FROM STDIN", b"k\n")])
            finally:
                named.append(session.backend_pid)

    with pytest.raises(pg8000.native.DatabaseError):
        first_copy()
    assert named == [process]
    assert session.backend_pid == 0  # rolled back
    in_order(conn)
    assert keys(conn) == ["k"]


def test_a_commit_refused_after_its_copy_leaves_the_line_in_order(
    conn: pg8000.native.Connection,
) -> None:
    """The COPY succeeds and the COMMIT of the same message fails (a deferred constraint):
    the server answers the query and then the Sync, both read."""
    conn.run("CREATE TEMPORARY TABLE late (k text UNIQUE DEFERRABLE INITIALLY DEFERRED)")
    conn.run("START TRANSACTION")
    with pytest.raises(pg8000.native.DatabaseError) as refused:
        run_with_copy(conn, "COPY late FROM STDIN; COMMIT", [b"i\ni\n"])
    assert refused.value.args[0]["C"] == UNIQUE_VIOLATION
    in_order(conn)
    assert conn.run("SELECT count(*) FROM late") == [[0]]  # rolled back, and no transaction
    assert conn.run("SELECT now() = statement_timestamp()") == [[True]]


def test_a_statement_timeout_during_a_large_copy_leaves_the_line_in_order(
    conn: pg8000.native.Connection,
) -> None:
    """The server cancels the COPY while the client is still sending its data."""
    conn.run(
        "CREATE FUNCTION pg_temp.slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " PERFORM pg_sleep(0.001); RETURN NEW; END $$"
    )
    conn.run(
        "CREATE TRIGGER slow BEFORE INSERT ON keys FOR EACH ROW EXECUTE FUNCTION pg_temp.slow()"
    )
    conn.run("START TRANSACTION")
    payload = b"".join(b"t%d\n" % i for i in range(200_000))
    with pytest.raises(pg8000.native.DatabaseError) as cancelled:
        run_with_copy(conn, "SET LOCAL statement_timeout = 200; COPY keys FROM STDIN", [payload])
    assert cancelled.value.args[0]["C"] == "57014"
    conn.run("ROLLBACK")
    in_order(conn)
    assert keys(conn) == []


def test_notices_during_the_copy_leave_the_line_in_order(conn: pg8000.native.Connection) -> None:
    conn.run(
        "CREATE FUNCTION pg_temp.chatty() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " RAISE WARNING 'row %', NEW.k; RETURN NEW; END $$"
    )
    conn.run(
        "CREATE TRIGGER chatty BEFORE INSERT ON keys FOR EACH ROW EXECUTE FUNCTION pg_temp.chatty()"
    )
    conn.run("START TRANSACTION")
    run_with_copy(conn, "COPY keys FROM STDIN; COMMIT", [b"j\nk\n"])
    in_order(conn)
    assert keys(conn) == ["j", "k"]


def test_an_empty_payload_copies_nothing_and_leaves_the_line_in_order(
    conn: pg8000.native.Connection,
) -> None:
    run_with_copy(conn, "COPY keys FROM STDIN", [b""])
    in_order(conn)
    assert keys(conn) == []


def test_a_set_refused_in_an_aborted_transaction_asks_for_no_data(
    conn: pg8000.native.Connection,
) -> None:
    """The timeouts armed in the COPY's message, in a transaction a statement already failed
    (25P02): the COPY never runs, no data is sent, no extra answer is waited for."""
    conn.run("START TRANSACTION")
    with pytest.raises(pg8000.native.DatabaseError):
        conn.run("SELECT 1/0")
    with pytest.raises(pg8000.native.DatabaseError) as refused:
        run_with_copy(conn, "SET LOCAL statement_timeout = 5000; COPY keys FROM STDIN", [b"l\n"])
    assert refused.value.args[0]["C"] == "25P02"
    conn.run("ROLLBACK")
    in_order(conn)
    assert keys(conn) == []


def test_a_session_ended_during_the_copy_is_a_lost_line(conn: pg8000.native.Connection) -> None:
    """A failover or a DBA ends the server process while it copies: the client learns it at
    once (no wait for an answer that never comes) as a lost line or the server's error."""
    conn.run(
        "CREATE FUNCTION pg_temp.ended() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$"
    )
    conn.run(
        "CREATE TRIGGER ended BEFORE INSERT ON keys FOR EACH ROW EXECUTE FUNCTION pg_temp.ended()"
    )
    # What the function takes as a lost line: pg8000's InterfaceError or the socket's OSError
    # (transaction.CONNECTION_LOST), whichever the reset reaches first.
    with pytest.raises((pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError)):
        run_with_copy(conn, "COPY keys FROM STDIN", [b"m\n" * 1000])
