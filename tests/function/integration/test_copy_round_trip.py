"""COPY in one round trip (``run_with_copy``): the line stays in order whatever the server says.

pg8000 ends COPY data with a Sync that the simple protocol answers with one more
ReadyForQuery; a statement that took that answer for its own would read the previous one's
results, or wait forever. Every case is followed by a query whose answer is checked.
"""

from __future__ import annotations

from collections.abc import Iterator

import pg8000.native
import pytest

from login_etl.adapters.postgres.connection import connect, run_with_copy
from tests.postgres_helpers import params

UNIQUE_VIOLATION = "23505"


@pytest.fixture
def conn(db: pg8000.native.Connection) -> Iterator[pg8000.native.Connection]:
    """A connection of the function's kind, with a table of unique keys of its own."""
    made = connect(params())
    made.run("CREATE TEMPORARY TABLE keys (k text PRIMARY KEY)")
    yield made
    made.close()


def in_order(conn: pg8000.native.Connection) -> None:
    """The next statement gets its own answer."""
    assert conn.run("SELECT 'next', 42") == [["next", 42]]


def keys(conn: pg8000.native.Connection) -> list[str]:
    return [row[0] for row in conn.run("SELECT k FROM keys ORDER BY k")]


def test_a_copy_writes_its_rows(conn: pg8000.native.Connection) -> None:
    run_with_copy(conn, "COPY keys FROM STDIN", b"a\nb\n")
    in_order(conn)
    assert keys(conn) == ["a", "b"]


def test_statements_around_the_copy_run_in_the_same_message(
    conn: pg8000.native.Connection,
) -> None:
    conn.run("START TRANSACTION")
    run_with_copy(conn, "SET LOCAL statement_timeout = 5000; COPY keys FROM STDIN; COMMIT", b"c\n")
    in_order(conn)
    assert conn.run("SHOW statement_timeout") == [["0"]]  # local to the committed transaction
    assert keys(conn) == ["c"]


def test_a_copy_the_server_refuses_midway_leaves_the_line_in_order(
    conn: pg8000.native.Connection,
) -> None:
    conn.run("START TRANSACTION")
    with pytest.raises(pg8000.native.DatabaseError) as refused:
        run_with_copy(conn, "COPY keys FROM STDIN; COMMIT", b"d\nd\n")
    assert refused.value.args[0]["C"] == UNIQUE_VIOLATION
    conn.run("ROLLBACK")  # the COMMIT did not run: the transaction was still open, aborted
    in_order(conn)
    assert keys(conn) == []


def test_a_copy_refused_before_its_data_leaves_the_line_in_order(
    conn: pg8000.native.Connection,
) -> None:
    """No data was asked for, so no Sync went out, and no extra answer is waited for."""
    with pytest.raises(pg8000.native.DatabaseError):
        run_with_copy(conn, "COPY no_such_table FROM STDIN", b"e\n")
    in_order(conn)


def test_a_large_payload_refused_early_leaves_the_line_in_order(
    conn: pg8000.native.Connection,
) -> None:
    """The server refuses at the second line and drops the rest of the data as it comes."""
    payload = b"f\nf\n" + b"".join(b"g%d\n" % i for i in range(200_000))
    with pytest.raises(pg8000.native.DatabaseError):
        run_with_copy(conn, "COPY keys FROM STDIN", payload)
    in_order(conn)
    run_with_copy(conn, "COPY keys FROM STDIN", b"h\n")
    assert keys(conn) == ["h"]
