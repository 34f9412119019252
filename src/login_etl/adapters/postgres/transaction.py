"""The one transaction scope of the function: begin, commit, roll back, or abandon.

Every write (the batch, the isolation of refused rows, the ledger's prune, the schema) runs
inside ``transaction``. Its timeouts are set per transaction with ``SET LOCAL`` (no session
state, so a pooler such as RDS Proxy can multiplex the connection) and bound to the
invocation's deadline, so that no transaction outlives the invocation by more than its margin
whatever the client does (docs/guarantees.md, "Deadlines"):

* ``statement_timeout``: the server ends a statement that runs too long, rolls back and frees
  its locks; at most the configured timeout, and never past the deadline;
* ``idle_in_transaction_session_timeout``: the server ends the session of a client that stops
  talking in the middle of a transaction (a frozen or partitioned function) at the deadline,
  instead of keeping its ledger locks until TCP gives up, hours later;
* the socket's read timeout: the client stops waiting shortly after the server's timeout
  should have acted (a server that cannot answer at all), and never past the deadline. A
  client that gives up on a reply abandons the transaction: it closes the connection and ends
  the server process from a second one, so a statement still running there cannot keep the
  locks a retry waits on.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pg8000.native

from login_etl.adapters.postgres.connection import (
    ConnectionParams,
    CopyReply,
    close_quietly,
    connect,
    end_backend,
    run_with_copy,
    set_read_timeout,
    sqlstate,
)
from login_etl.adapters.postgres.credentials import ConnectionParamsSource
from login_etl.deadline import Deadline, DeadlineExceededError

# The server's timeouts fire this long before the client's, so that the server's own
# cancellation (a clean rollback, a SQLSTATE) comes first whenever the server can answer.
SERVER_FIRST_S = 0.5
# The server ends the session of a client silent this long in the middle of a transaction (a
# frozen or partitioned function), or sooner if the deadline comes first. The function's own
# gaps between statements are a batch's formatting, far shorter.
IDLE_LIMIT_S = 10.0
# A ROLLBACK near the deadline waits at most this long (within the deadline's margin).
ROLLBACK_TIMEOUT_S = 1.0
# SQLSTATE class 28: invalid authorization (28P01 wrong password, 28000 e.g. unknown user).
_AUTHENTICATION_FAILED_CLASS = "28"
# What a client that lost its line, or gave up waiting, gets from pg8000.
CONNECTION_LOST = (pg8000.native.InterfaceError, OSError)
# Every transaction begins so. The server sends no NOTICE or WARNING (a DBA's audit trigger
# may raise one per row): the function reads none of them, and a batch's message is written
# whole before its answers are read, so a flood of them would fill the line both ways and
# stall the batch until its statement timeout (docs/guarantees.md, "Deadlines"). Errors, and
# INFO, which Postgres always sends, still come.
BEGIN_SQL = "START TRANSACTION; SET LOCAL client_min_messages = error;"


@dataclass(slots=True)
class Session:
    """An open connection and the server process of its current transaction, if any."""

    conn: pg8000.native.Connection
    # None: a connection of the operator tools, which run with the connection's own timeouts.
    params: ConnectionParams | None = None
    source: ConnectionParamsSource | None = None
    backend_pid: int = 0  # 0 outside a transaction, and until a begin is answered
    lost: bool = False  # closed: the owner opens another
    # The current transaction's deadline, and the server timeouts armed for it (seconds).
    _deadline: Deadline | None = None
    _statement_timeouts: int = 1
    _armed: tuple[float, float] = (0.0, 0.0)
    _pending: bool = False  # begun, not sent yet: the first statement carries the begin
    copies_begun: int = 0  # of the last copy_in: the COPYs the server began

    def begin(
        self, deadline: Deadline | None, statement_timeouts: int = 1, *, deferred: bool = False
    ) -> None:
        """START TRANSACTION with its timeouts, in one round trip; records the server process.

        ``deferred``: sent with the first statement instead, in the same message when that is
        a COPY (``copy_in``), to save the batch a round trip.

        The process is asked per transaction, not per connection: behind RDS Proxy each
        transaction may run on another one, and a client that gives up must end the right one.
        It is 0 until the begin answers, so a client that gives up during the begin ends
        nothing (the previous transaction's process may serve another client by now).
        """
        self.backend_pid = 0
        self._deadline, self._statement_timeouts = deadline, statement_timeouts
        self._pending = deferred
        if not deferred:
            self._send_begin()

    def _send_begin(self) -> None:
        self._pending = False
        timeouts = "" if self.params is None else self._arm()
        rows = self.conn.run(f"{BEGIN_SQL} {timeouts} SELECT pg_backend_pid()")
        self.backend_pid = int(rows[-1][0])

    @property
    def in_transaction(self) -> bool:
        """A transaction is open on the server, or begun and about to be sent."""
        return self._pending or self.backend_pid != 0

    def run(self, statement: str, **params: Any) -> Any:
        """A statement of the transaction, none of its waits past the deadline.

        The server's timeouts armed at the begin are armed again once the time left is shorter
        than they are (a SET round trip, only near the deadline); the socket's read timeout is
        set for each statement.
        """
        if self._pending:
            self._send_begin()
        if self.params is not None and self._deadline is not None:
            left = self._deadline.check()
            statement_s, idle_s = self._armed
            # Armed for what was left then: once the server's timeouts could outlast the deadline
            # by more than SERVER_FIRST_S (every transaction shorter than that never re-arms).
            if left < statement_s or left + SERVER_FIRST_S < idle_s:
                self.conn.run(self._arm())
            else:
                set_read_timeout(
                    self.conn, _read_timeout(self.params, left, self._statement_timeouts)
                )
        return self.conn.run(statement, **params)

    def copy_in(self, copies: Sequence[tuple[str, bytes]], *, commit: bool = False) -> None:
        """Each ``COPY ... FROM STDIN`` reading its payload, then the COMMIT if asked, in one
        message and one round trip (``run_with_copy``); ``copies_begun`` says how many of the
        COPYs the server began, so a caller knows which one a refusal came from.

        The server's timeouts are armed again in the same message when the time left asks for
        it (as ``run`` does with a round trip of its own); each statement of the message gets
        an equal share of the time left, so that all of them together end by the deadline. The
        client reads their answers in one read (the server sends them together), so it waits
        for all their timeouts, never past the deadline.
        """
        statements = len(copies) + commit
        timeouts = statements * self._statement_timeouts
        arm = ""
        if self.params is not None and self._deadline is not None:
            left = self._deadline.check()
            statement_s, idle_s = self._armed
            if self._pending or left < statements * statement_s or left + SERVER_FIRST_S < idle_s:
                arm = self._arm(statements)
            else:
                set_read_timeout(self.conn, _read_timeout(self.params, left, timeouts))
        elif self.params is not None:  # no deadline: every statement's configured timeout
            if self._pending:
                arm = self._arm(statements)
            set_read_timeout(self.conn, self.params.read_timeout_s(timeouts))
        sql = "; ".join([statement for statement, _ in copies] + (["COMMIT"] if commit else []))
        begin = ""
        if self._pending:  # the begin in the same message; its process known once answered
            self._pending = False
            begin = f"{BEGIN_SQL} SELECT pg_backend_pid(); "
        reply = CopyReply()
        try:
            run_with_copy(self.conn, f"{begin}{arm}{sql}", [p for _, p in copies], reply)
        finally:
            self.copies_begun = reply.copies
            if begin and reply.rows:
                self.backend_pid = int(reply.rows[0][0])
        if commit:
            self.backend_pid = 0

    def end(self, statement: str) -> None:
        """COMMIT or ROLLBACK; the transaction's process is no longer ours to end.

        A ROLLBACK arms nothing (a SET in an aborted transaction is refused, 25P02) and runs
        even with no time left, within the margin kept for it.
        """
        if self._pending:  # nothing was sent: nothing to end
            self._pending = False
            return
        if statement == "ROLLBACK":
            if self._deadline is not None:
                set_read_timeout(self.conn, ROLLBACK_TIMEOUT_S)
            self.conn.run(statement)
        else:
            self.run(statement)
        self.backend_pid = 0

    def _arm(self, statements: int = 1) -> str:
        """The SETs of the server's timeouts for the time left now, shared by ``statements``
        statements sent at once; sets the read timeout."""
        assert self.params is not None
        statement_ms, idle_ms, read_s = _timeouts(
            self.params, self._deadline, self._statement_timeouts, statements
        )
        set_read_timeout(self.conn, read_s)
        self._armed = (statement_ms / 1000 or math.inf, idle_ms / 1000 or math.inf)
        return (
            f"SET LOCAL statement_timeout = {statement_ms};"
            f" SET LOCAL idle_in_transaction_session_timeout = {idle_ms};"
        )

    def close(self) -> None:
        """Close the connection; the owner opens another next time."""
        self.lost = True
        close_quietly(self.conn)

    def abandon(self) -> None:
        """Close, and end the server process of the transaction, which may still be running.

        With fresh parameters: an IAM token made at the connect has expired 15 minutes later,
        and the second connection that ends the process would be refused.
        """
        pid, self.backend_pid = self.backend_pid, 0
        self.close()
        params = self.params
        if params is None:
            return
        if self.source is not None:
            with contextlib.suppress(Exception):  # else the parameters of the connect
                params = self.source.params()
        end_backend(params, pid)


@contextmanager
def transaction(
    session: Session,
    deadline: Deadline | None,
    statement_timeouts: int = 1,
    *,
    deferred: bool = False,
) -> Iterator[Session]:
    """A transaction the block ends with ``session.end("COMMIT")``, or that is rolled back;
    ``deferred``: its begin goes with the first statement (``Session.begin``).

    A server error leaves the connection usable (rolled back, then raised); a lost line or a
    client timeout abandons the transaction; anything else (an interrupt, a bug) closes the
    connection, whose state is then unknown.
    """
    if deadline is not None:
        deadline.check()  # no time left: nothing begun, and the connection kept
    try:
        session.begin(deadline, statement_timeouts, deferred=deferred)
        yield session
        if session.in_transaction:
            session.end("ROLLBACK")  # the block did not commit
    except pg8000.native.DatabaseError:
        # After a failed statement (or COMMIT) the transaction is aborted or gone; ROLLBACK
        # ends it, or only warns.
        try:
            session.end("ROLLBACK")
        except CONNECTION_LOST:
            session.abandon()
        raise
    except CONNECTION_LOST:
        session.abandon()
        raise
    except BaseException:
        if session.backend_pid:
            session.abandon()
        else:
            session.close()
        raise


def open_session(source: ConnectionParamsSource, deadline: Deadline | None = None) -> Session:
    """Connect, within the deadline; after an authentication failure, re-read the parameters
    and try once more.

    A rotated secret (RDS-managed secrets rotate on a schedule) otherwise breaks every
    reconnect until the container dies.
    """
    params = source.params()
    try:
        return Session(connect(params, _connect_timeout(params, deadline)), params, source)
    except pg8000.native.DatabaseError as error:
        if not sqlstate(error).startswith(_AUTHENTICATION_FAILED_CLASS):
            raise
    params = source.params(refresh=True)
    return Session(connect(params, _connect_timeout(params, deadline)), params, source)


def _connect_timeout(params: ConnectionParams, deadline: Deadline | None) -> float:
    if deadline is None:
        return params.connect_timeout_s
    return min(params.connect_timeout_s, deadline.check())


def _timeouts(
    params: ConnectionParams,
    deadline: Deadline | None,
    statement_timeouts: int,
    statements: int = 1,
) -> tuple[int, int, float | None]:
    """(statement_timeout ms, idle_in_transaction_session_timeout ms, socket read timeout s).

    0 is Postgres's "no limit", None the socket's. Without a deadline (operator tools), the
    configured statement timeout and a read timeout a margin above it; no idle limit.
    """
    statement_ms = statement_timeouts * max(0, int(params.statement_timeout_ms))
    if deadline is None:
        return statement_ms, 0, params.read_timeout_s(statement_timeouts)
    left_s = deadline.left_s()
    if left_s <= 0:
        raise DeadlineExceededError
    server_ms = max(1, int((left_s - SERVER_FIRST_S) * 1000 / statements))
    statement_ms = min(statement_ms, server_ms) if statement_ms else server_ms
    idle_ms = int(min(left_s, IDLE_LIMIT_S) * 1000) + 1
    # One read may wait for all of them: the server answers the message's statements at once.
    return statement_ms, idle_ms, _read_timeout(params, left_s, statements * statement_timeouts)


def _read_timeout(params: ConnectionParams, left_s: float, statement_timeouts: int) -> float:
    read_s = params.read_timeout_s(statement_timeouts)
    return left_s if read_s is None else min(read_s, left_s)
