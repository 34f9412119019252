"""Opening and ending pg8000 connections: TLS, timeouts, credentials that rotate.

Three timeouts, three jobs (they were one, and a 6 s lock wait could never succeed):

* ``connect_timeout_s`` bounds the TCP connect and the start-up handshake only;
* the server enforces ``statement_timeout``, set per transaction with ``SET LOCAL`` (no session
  state, so a pooler such as RDS Proxy can multiplex the connection): when it fires, Postgres
  itself ends the statement, rolls back and frees its locks;
* the socket's read timeout is the longest statement timeout (the isolation of refused rows
  gets ``ISOLATION_TIMEOUT_FACTOR`` of them) plus a margin, a last resort for a server
  that cannot answer at all (a network partition). A client that gives up there ends the
  server-side session from a second connection, so an abandoned COPY cannot keep holding the
  ledger locks that the retry then waits on.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass, replace
from typing import Any, Protocol

import pg8000.native

# The client waits this much longer than the server's statement_timeout before giving up:
# the server's own cancellation (clean rollback, a SQLSTATE) should always come first.
READ_TIMEOUT_MARGIN_S = 10.0
# Isolating refused rows tries each row of a refused chunk twice (a probe, then for real) in
# one statement: it gets this many statement timeouts, so a batch whose write fits the timeout
# is not dead-lettered because one of its rows was refused (found in review).
ISOLATION_TIMEOUT_FACTOR = 5
# SQLSTATE class 28: invalid authorization (28P01 wrong password, 28000 e.g. unknown user).
_AUTHENTICATION_FAILED_CLASS = "28"


@dataclass(frozen=True, slots=True)
class ConnectionParams:
    """Where and how to connect. ``__repr__`` hides the password."""

    host: str
    port: int
    user: str
    password: str
    database: str
    sslmode: str = "disable"  # disable | require | verify-full
    connect_timeout_s: float = 5.0
    statement_timeout_ms: int = 60_000
    # None: statement timeout + READ_TIMEOUT_MARGIN_S (no limit if the statement has none).
    read_timeout_s: float | None = None

    def __repr__(self) -> str:
        return (
            f"ConnectionParams(host={self.host!r}, port={self.port}, user={self.user!r},"
            f" database={self.database!r}, sslmode={self.sslmode!r})"
        )

    @property
    def effective_read_timeout_s(self) -> float | None:
        """How long one read may block once connected."""
        if self.read_timeout_s is not None:
            return self.read_timeout_s
        if self.statement_timeout_ms <= 0:
            return None
        longest_statement_s = ISOLATION_TIMEOUT_FACTOR * self.statement_timeout_ms / 1000
        return longest_statement_s + READ_TIMEOUT_MARGIN_S

    def with_password(self, password: str) -> ConnectionParams:
        """The same target with other credentials (tests, rotation)."""
        return replace(self, password=password)


class ConnectionParamsSource(Protocol):
    """Where connection parameters come from; re-read after an authentication failure."""

    def params(self, *, refresh: bool = False) -> ConnectionParams:
        """The parameters to use; ``refresh`` re-reads them (the secret may have rotated)."""
        ...


@dataclass(frozen=True, slots=True)
class FixedParams:
    """Parameters that never change (``DATABASE_URL``, tests)."""

    value: ConnectionParams

    def params(self, *, refresh: bool = False) -> ConnectionParams:  # noqa: ARG002
        """Always the same."""
        return self.value


@dataclass(slots=True)
class Session:
    """An open connection, and the server process of its current transaction (``begin``
    updates it) so that a client that gives up can end it from outside."""

    conn: pg8000.native.Connection
    backend_pid: int
    params: ConnectionParams


def open_session(source: ConnectionParamsSource) -> Session:
    """Connect; after an authentication failure, re-read the parameters and try once more.

    A rotated secret (RDS-managed secrets rotate on a schedule) otherwise breaks every
    reconnect until the container dies.
    """
    params = source.params()
    try:
        return _open(params)
    except pg8000.native.DatabaseError as error:
        if not sqlstate(error).startswith(_AUTHENTICATION_FAILED_CLASS):
            raise
    return _open(source.params(refresh=True))


def _open(params: ConnectionParams) -> Session:
    return Session(connect(params), 0, params)


def connect(params: ConnectionParams) -> pg8000.native.Connection:
    """Open a connection with TLS as configured; no session state is set."""
    sock = socket.create_connection((params.host, params.port), params.connect_timeout_s)
    # pg8000 writes a COPY as several small packets; with Nagle's algorithm the last one waits
    # for the server's delayed ACK: 40 ms per batch, whatever its size (measured: a 10-record
    # batch took 43 ms, 1.4 ms with TCP_NODELAY). libpq sets it too.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    try:
        conn = pg8000.native.Connection(
            user=params.user,
            password=params.password,
            host=params.host,
            port=params.port,
            database=params.database,
            ssl_context=_ssl_context(params.sslmode),
            timeout=params.connect_timeout_s,
            application_name="login-etl",
            sock=sock,
        )
    except BaseException:
        sock.close()
        raise
    # pg8000 has one timeout for everything; past the handshake, reads wait for the server's
    # statement_timeout to act first. _usock is the (TLS-wrapped) socket pg8000 reads from.
    conn._usock.settimeout(params.effective_read_timeout_s)
    return conn


def begin(conn: pg8000.native.Connection, params: ConnectionParams, timeouts: int = 1) -> int:
    """START TRANSACTION with ``timeouts`` statement timeouts, in one round trip (simple
    protocol); the server process serving this transaction.

    The process is asked per transaction, not per connection: behind RDS Proxy each
    transaction may run on another one, and a client that gives up must end the right one.
    """
    timeout_ms = int(params.statement_timeout_ms) * timeouts
    rows = conn.run(
        f"START TRANSACTION; SET LOCAL statement_timeout = {timeout_ms}; SELECT pg_backend_pid()"
    )
    return int(rows[-1][0])


def begin_session(session: Session, timeouts: int = 1) -> None:
    """``begin`` on the session's connection, recording the server process of the transaction.

    The process is 0 until the begin answers: a client that gives up during it ends nothing,
    where the previous transaction's process (behind RDS Proxy, maybe serving another client
    by now) would have been ended (found in review).
    """
    session.backend_pid = 0
    session.backend_pid = begin(session.conn, session.params, timeouts)


def end_backend(params: ConnectionParams, backend_pid: int) -> None:
    """Terminate a server process from a second connection; best effort, never raises.

    Used when the client gave up on a reply: the server may still be running the statement
    (and holding its locks). Terminating rolls the transaction back; the ledger makes the
    retry safe whatever had happened. Process 0: no transaction began, nothing to end.
    """
    if not backend_pid:
        return
    with contextlib.suppress(pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError):
        conn = connect(replace(params, read_timeout_s=params.connect_timeout_s))
        try:
            conn.run("SELECT pg_terminate_backend(:pid)", pid=backend_pid)
        finally:
            close_quietly(conn)


def close_quietly(conn: pg8000.native.Connection) -> None:
    """Close, ignoring errors from a connection that is already gone."""
    with contextlib.suppress(pg8000.native.InterfaceError, OSError):
        conn.close()


def sqlstate(error: pg8000.native.DatabaseError) -> str:
    """The SQLSTATE of a server error ('' if pg8000 did not get one)."""
    details = error.args[0] if error.args else None
    return str(details.get("C", "")) if isinstance(details, dict) else ""


def _ssl_context(sslmode: str) -> Any:
    if sslmode == "disable":
        return None
    import ssl  # noqa: PLC0415 - only TLS connections pay for it

    context = ssl.create_default_context()
    if sslmode == "require":  # encrypted, server not verified (libpq's "require")
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
