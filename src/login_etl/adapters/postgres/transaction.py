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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pg8000.native

from login_etl.adapters.postgres.connection import (
    ConnectionParams,
    close_quietly,
    connect,
    end_backend,
    set_read_timeout,
    sqlstate,
)
from login_etl.adapters.postgres.credentials import ConnectionParamsSource
from login_etl.deadline import Deadline, DeadlineExceededError

# The server's timeouts fire this long before the client's, so that the server's own
# cancellation (a clean rollback, a SQLSTATE) comes first whenever the server can answer.
SERVER_FIRST_S = 0.5
# SQLSTATE class 28: invalid authorization (28P01 wrong password, 28000 e.g. unknown user).
_AUTHENTICATION_FAILED_CLASS = "28"
# What a client that lost its line, or gave up waiting, gets from pg8000.
CONNECTION_LOST = (pg8000.native.InterfaceError, OSError)


@dataclass(slots=True)
class Session:
    """An open connection and the server process of its current transaction, if any."""

    conn: pg8000.native.Connection
    # None: a connection of the operator tools, which run with the connection's own timeouts.
    params: ConnectionParams | None = None
    source: ConnectionParamsSource | None = None
    backend_pid: int = 0  # 0 outside a transaction, and until a begin is answered
    lost: bool = False  # closed: the owner opens another

    def begin(self, deadline: Deadline | None, statement_timeouts: int = 1) -> None:
        """START TRANSACTION with its timeouts, in one round trip; records the server process.

        The process is asked per transaction, not per connection: behind RDS Proxy each
        transaction may run on another one, and a client that gives up must end the right one.
        It is 0 until the begin answers, so a client that gives up during the begin ends
        nothing (the previous transaction's process may serve another client by now).
        """
        self.backend_pid = 0
        if self.params is None:
            rows = self.conn.run("START TRANSACTION; SELECT pg_backend_pid()")
        else:
            statement_ms, idle_ms, read_s = _timeouts(self.params, deadline, statement_timeouts)
            set_read_timeout(self.conn, read_s)
            rows = self.conn.run(
                f"START TRANSACTION; SET LOCAL statement_timeout = {statement_ms}; SET LOCAL"
                f" idle_in_transaction_session_timeout = {idle_ms}; SELECT pg_backend_pid()"
            )
        self.backend_pid = int(rows[-1][0])

    def end(self, statement: str) -> None:
        """COMMIT or ROLLBACK; the transaction's process is no longer ours to end."""
        self.conn.run(statement)
        self.backend_pid = 0

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
    session: Session, deadline: Deadline | None, statement_timeouts: int = 1
) -> Iterator[Session]:
    """A transaction the block ends with ``session.end("COMMIT")``, or that is rolled back.

    A server error leaves the connection usable (rolled back, then raised); a lost line or a
    client timeout abandons the transaction; anything else (an interrupt, a bug) closes the
    connection, whose state is then unknown.
    """
    try:
        session.begin(deadline, statement_timeouts)
        yield session
        if session.backend_pid:
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
    params: ConnectionParams, deadline: Deadline | None, statement_timeouts: int
) -> tuple[int, int, float | None]:
    """(statement_timeout ms, idle_in_transaction_session_timeout ms, socket read timeout s).

    0 is Postgres's "no limit", None the socket's. Without a deadline (operator tools), the
    configured statement timeout and a read timeout a margin above it; no idle limit.
    """
    statement_ms = statement_timeouts * max(0, int(params.statement_timeout_ms))
    read_s = params.read_timeout_s(statement_timeouts)
    if deadline is None:
        return statement_ms, 0, read_s
    left_s = deadline.left_s()
    if left_s <= 0:
        raise DeadlineExceededError
    server_ms = max(1, int((left_s - SERVER_FIRST_S) * 1000))
    statement_ms = min(statement_ms, server_ms) if statement_ms else server_ms
    read_s = min(read_s, left_s) if read_s is not None else left_s
    return statement_ms, int(left_s * 1000) + 1, read_s
