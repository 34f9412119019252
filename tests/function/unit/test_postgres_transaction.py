"""The transaction scope's bookkeeping and timeouts, without a server."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from login_etl.adapters.postgres import connection, transaction
from login_etl.adapters.postgres.connection import ConnectionParams
from login_etl.adapters.postgres.credentials import FixedParams
from login_etl.adapters.postgres.transaction import SERVER_FIRST_S, Session
from login_etl.deadline import Deadline, DeadlineExceededError

PARAMS = ConnectionParams("db.invalid", 5432, "u", "pw", "d", statement_timeout_ms=60_000)


class RecordingConnection:
    """A connection that records what it is sent and its socket's timeout, or loses its line."""

    def __init__(self, *, lost: bool = False) -> None:
        self.lost = lost
        self.sent: list[str] = []
        self._usock = socket.socket()  # pg8000's private socket: only its timeout is used

    def run(self, statement: str, **_: Any) -> Any:
        if self.lost:
            raise OSError("connection reset")
        self.sent.append(statement)
        return [[4242]]

    def close(self) -> None:
        self._usock.close()


def session(conn: RecordingConnection) -> Session:
    return Session(conn, PARAMS, FixedParams(PARAMS))


def begin_with(remaining_ms: int | None, statement_timeouts: int = 1) -> RecordingConnection:
    conn = RecordingConnection()
    deadline = None if remaining_ms is None else Deadline(lambda: remaining_ms, margin_ms=2_000)
    session(conn).begin(deadline, statement_timeouts)
    return conn


def setting(conn: RecordingConnection, name: str) -> int:
    (begin,) = conn.sent
    return int(begin.split(f"SET LOCAL {name} = ", 1)[1].split(";", 1)[0])


def test_a_begin_that_never_answers_leaves_no_stale_process_to_end() -> None:
    """Behind RDS Proxy, the previous transaction's process may serve another client now."""
    lost = session(RecordingConnection(lost=True))
    lost.backend_pid = 4242
    with pytest.raises(OSError, match="reset"):
        lost.begin(None)
    assert lost.backend_pid == 0


def test_ending_process_zero_opens_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[object] = []
    monkeypatch.setattr(connection, "connect", lambda *args: opened.append(args))
    connection.end_backend(PARAMS, 0)
    assert opened == []


def test_without_a_deadline_the_configured_timeouts_apply() -> None:
    conn = begin_with(None)
    assert setting(conn, "statement_timeout") == 60_000
    assert setting(conn, "idle_in_transaction_session_timeout") == 0
    assert conn._usock.gettimeout() == 60 + connection.READ_TIMEOUT_MARGIN_S


def test_a_long_deadline_keeps_the_statement_timeout_and_bounds_idling() -> None:
    conn = begin_with(600_000)
    assert setting(conn, "statement_timeout") == 60_000
    assert setting(conn, "idle_in_transaction_session_timeout") == 10_001  # IDLE_LIMIT_S
    assert conn._usock.gettimeout() == 60 + connection.READ_TIMEOUT_MARGIN_S


@pytest.mark.parametrize("statement_timeouts", [1, 5])
def test_a_near_deadline_bounds_every_wait(statement_timeouts: int) -> None:
    """8 s left, 2 s of margin: the server gives up first, the client 0.5 s later, at 6 s."""
    conn = begin_with(8_000, statement_timeouts)
    assert setting(conn, "statement_timeout") == int((6 - SERVER_FIRST_S) * 1000)
    assert setting(conn, "idle_in_transaction_session_timeout") == 6_001
    assert conn._usock.gettimeout() == 6


def test_no_transaction_begins_once_the_margin_is_reached() -> None:
    conn = RecordingConnection()
    with pytest.raises(DeadlineExceededError):
        session(conn).begin(Deadline(lambda: 1_999, margin_ms=2_000))
    assert conn.sent == []


def test_a_transaction_refused_for_want_of_time_keeps_the_connection() -> None:
    """Nothing was sent: the connection is as good as before, for the next invocation."""
    conn = RecordingConnection()
    idle = session(conn)

    def begin_too_late() -> None:
        with transaction.transaction(idle, Deadline(lambda: 1_999, margin_ms=2_000)):
            pass

    with pytest.raises(DeadlineExceededError):
        begin_too_late()
    assert conn.sent == []
    assert not idle.lost


def test_a_lost_line_abandons_the_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    ended: list[int] = []
    monkeypatch.setattr(transaction, "end_backend", lambda _params, pid: ended.append(pid))
    conn = RecordingConnection()
    open_session = session(conn)

    def lose_the_line_inside() -> None:
        with transaction.transaction(open_session, None):
            conn.lost = True
            conn.run("COPY ...")

    with pytest.raises(OSError, match="reset"):
        lose_the_line_inside()
    assert ended == [4242]
    assert open_session.lost


def test_a_deferred_transaction_that_runs_nothing_sends_nothing() -> None:
    conn = RecordingConnection()
    deferred = session(conn)
    with transaction.transaction(deferred, Deadline(lambda: 60_000), deferred=True):
        pass  # nothing to roll back
    with transaction.transaction(deferred, Deadline(lambda: 60_000), deferred=True):
        deferred.end("COMMIT")
    assert conn.sent == []
    assert not deferred.in_transaction


def test_a_statement_after_a_deferred_begin_sends_the_begin_first() -> None:
    conn = RecordingConnection()
    deferred = session(conn)
    deferred.begin(Deadline(lambda: 60_000), deferred=True)
    deferred.run("SELECT 1")
    begin, statement = conn.sent
    assert begin.startswith("START TRANSACTION;")
    assert "statement_timeout" in begin
    assert statement == "SELECT 1"
    assert deferred.backend_pid == 4242
