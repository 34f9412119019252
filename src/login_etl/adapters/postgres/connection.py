"""Opening a pg8000 connection (TLS, socket options) and ending a server process from outside.

The timeouts of a transaction (the server's ``statement_timeout`` and
``idle_in_transaction_session_timeout``, the socket's read timeout) are set per transaction
by ``transaction.Session.begin``, bound to the invocation's deadline. Here: the connect's own
timeout, the read timeout of a connection used outside a transaction scope (operator tools),
and TCP keepalives so that a peer that vanished is noticed at all.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pg8000.native
from pg8000.core import (
    COPY_DATA,
    COPY_DONE_MSG,
    COPY_IN_RESPONSE,
    QUERY,
    SYNC_MSG,
    Context,
    i_pack,
    i_unpack,
)
from pg8000.native import Connection

# The client waits this much longer than the server's statement_timeout before giving up:
# the server's own cancellation (clean rollback, a SQLSTATE) should always come first.
READ_TIMEOUT_MARGIN_S = 10.0
# A connection with nothing to say is probed after KEEPALIVE_IDLE_S, then every
# KEEPALIVE_INTERVAL_S, and given up after KEEPALIVE_COUNT probes unanswered; data sent and
# not acknowledged for USER_TIMEOUT_MS fails the socket too (a partitioned network).
KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3
USER_TIMEOUT_MS = 30_000
# The authentication requests that carry the password itself (AuthenticationCleartextPassword)
# or a replayable hash of it (AuthenticationMD5Password).
CLEARTEXT_PASSWORD, MD5_PASSWORD = 3, 5
# AuthenticationOk, AuthenticationSASL (with the mechanisms offered), AuthenticationSASLFinal.
AUTHENTICATION_OK, SASL, SASL_FINAL = 0, 10, 12
SCRAM_PLUS = b"SCRAM-SHA-256-PLUS"
# Ending a server process from a second connection is a last step, taken with little time
# left: it gets at most this long to connect and to be answered.
END_BACKEND_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class ConnectionParams:
    """Where and how to connect. ``__repr__`` hides the password."""

    host: str
    port: int
    user: str
    password: str
    database: str
    sslmode: str = "disable"  # disable | require | verify-full
    ssl_root_cert: str | None = None  # CA bundle for verify-full; None: the system store
    connect_timeout_s: float = 5.0
    statement_timeout_ms: int = 60_000

    def __repr__(self) -> str:
        return (
            f"ConnectionParams(host={self.host!r}, port={self.port}, user={self.user!r},"
            f" database={self.database!r}, sslmode={self.sslmode!r})"
        )

    def read_timeout_s(self, statement_timeouts: int = 1) -> float | None:
        """How long one read may block: the server's timeout first, then the client's."""
        if self.statement_timeout_ms <= 0:
            return None
        return statement_timeouts * self.statement_timeout_ms / 1000 + READ_TIMEOUT_MARGIN_S

    def with_password(self, password: str) -> ConnectionParams:
        """The same target with other credentials (tests, rotation)."""
        return replace(self, password=password)


def connect(params: ConnectionParams, timeout_s: float | None = None) -> pg8000.native.Connection:
    """Open a connection with TLS as configured, within ``timeout_s`` (default: the connect
    timeout) for the TCP connect and the handshake each; no session state is set."""
    if timeout_s is None:
        timeout_s = params.connect_timeout_s
    sock = socket.create_connection((params.host, params.port), timeout_s)
    # pg8000 writes a COPY as several small packets; with Nagle's algorithm the last one waits
    # for the server's delayed ACK, once per batch whatever its size, which is most of a small
    # batch's time (docs/benchmarks.md, "TCP_NODELAY"). libpq sets it too.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _keep_alive(sock)
    # Unverified TLS may be an impostor's: it gets no password, cleartext or MD5 (an MD5
    # answer replays), only SCRAM with channel binding, which proves nothing to a relay.
    connection_class = _ScramOnlyConnection if params.sslmode == "require" else Connection
    try:
        conn = connection_class(
            user=params.user,
            password=params.password,
            host=params.host,
            port=params.port,
            database=params.database,
            ssl_context=_ssl_context(params.sslmode, params.ssl_root_cert),
            timeout=timeout_s,
            application_name="login-etl",
            sock=sock,
        )
    except BaseException:
        sock.close()
        raise
    # pg8000 has one timeout for everything; past the handshake, reads wait for the server's
    # statement_timeout to act first. _usock is the (TLS-wrapped) socket pg8000 reads from.
    set_read_timeout(conn, params.read_timeout_s())
    return conn


@dataclass(slots=True)
class CopyReply:
    """What the server answered to a ``run_with_copy`` so far: kept when the query fails."""

    rows: list[list[Any]] = field(default_factory=list)  # of the statements before a COPY
    copies: int = 0  # the COPYs it began: which one a refusal came from


def run_with_copy(
    conn: pg8000.native.Connection,
    sql: str,
    payloads: Sequence[bytes],
    reply: CopyReply | None = None,
) -> None:
    """A simple query whose ``COPY ... FROM STDIN`` statements read ``payloads``, in order,
    sent with all their data in one message: one round trip, one write.

    pg8000's ``run(sql, stream=...)`` takes the extended protocol: three round trips (parse;
    describe and bind; execute), a Python scan of the statement for parameters, and a write
    for each message, most of a small batch's cost (docs/instructions.md, "Round trips"). The
    simple protocol takes one, and lets the statements around the COPYs (the begin, the
    timeouts, the COMMIT) ride in the same message.

    The data goes out with the query, before the server asks for it: a COPY reads what is
    there already, and when the server refused the query before a COPY began, it drops that
    COPY's data as it comes (the protocol's "COPY Operations": CopyData and CopyDone outside a
    COPY are ignored). The message ends with a Sync, which the server answers with one more
    ReadyForQuery after the query's own, whatever happened: both are read, so the next
    statement gets its own answer. The rows of the statements before the COPYs go to
    ``reply`` as they arrive, and the COPYs begun are counted there, so that the caller has
    them even if the query then fails.
    """
    reply = CopyReply() if reply is None else reply
    message = [_message(QUERY, sql.encode("utf-8") + b"\0")]
    for payload in payloads:
        if payload:
            message.append(_message(COPY_DATA, payload))
        message.append(COPY_DONE_MSG)
    message.append(SYNC_MSG)
    context = Context(sql)
    context.rows = reply.rows
    sock = conn._sock
    try:
        sock.write(b"".join(message))
        sock.flush()
    except OSError as error:  # as pg8000 reports a write that failed
        raise pg8000.native.InterfaceError("network error") from error
    handlers = conn.message_types
    handlers[COPY_IN_RESPONSE] = _counter(reply)  # its data went out with the query
    refused = None
    try:
        conn.handle_messages(context)
    except pg8000.native.DatabaseError as error:  # the server's: the line is still in order
        refused = error
    finally:
        handlers[COPY_IN_RESPONSE] = conn.handle_COPY_IN_RESPONSE
    conn.handle_messages(Context(None))  # the Sync's answer, whatever the query's was
    if refused is not None:
        raise refused


def _message(code: bytes, data: bytes) -> bytes:
    """One message of the frontend protocol: its code, its length, its data."""
    length: bytes = i_pack(len(data) + 4)
    return code + length + data


def _counter(reply: CopyReply) -> Callable[[bytes, Context], None]:
    def copy_begun(_data: bytes, _context: Context) -> None:
        reply.copies += 1

    return copy_begun


def set_read_timeout(conn: pg8000.native.Connection, seconds: float | None) -> None:
    """How long the next reads may block (pg8000 has one timeout, set at connect, for all)."""
    conn._usock.settimeout(seconds)


def _keep_alive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    # Linux's options; elsewhere (a laptop) the system's keepalive defaults apply.
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_S),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
        ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS),
    ):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def end_backend(params: ConnectionParams, backend_pid: int) -> None:
    """Terminate a server process from a second connection; best effort, never raises.

    Used when the client gave up on a reply: the server may still be running the statement
    (and holding its locks). Terminating rolls the transaction back; the ledger makes the
    retry safe whatever had happened. Process 0: no transaction began, nothing to end.
    """
    if not backend_pid:
        return
    with contextlib.suppress(pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError):
        timeout_s = min(params.connect_timeout_s, END_BACKEND_TIMEOUT_S)
        conn = connect(params, timeout_s)
        set_read_timeout(conn, timeout_s)
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


class PasswordNotSentError(pg8000.native.InterfaceError):  # type: ignore[misc]
    """An unverified server asked for the password itself: it is not sent."""


class _ScramOnlyConnection(Connection):  # type: ignore[misc]
    """A connection for TLS whose server is not verified: it proves the password only by SCRAM
    bound to this TLS channel (SCRAM-SHA-256-PLUS), and takes no session without it.

    Cleartext and MD5 would hand the password (or a replayable hash) to an impostor; SCRAM
    without channel binding lets a relay with a certificate of its own pass the exchange on to
    the real server, and gives an impostor a proof to guess the password from offline; a server
    that asks for nothing at all is anyone's.
    """

    _scram_verified = False

    def handle_AUTHENTICATION_REQUEST(self, data: bytes, context: Any) -> None:  # noqa: N802 - pg8000's name
        code = i_unpack(data)[0]
        if code in (CLEARTEXT_PASSWORD, MD5_PASSWORD):
            raise PasswordNotSentError(
                "the server asked for the password in clear or as MD5 over TLS that is not"
                " verified (DB_SSLMODE=require): not sent; use DB_SSLMODE=verify-full"
            )
        if code == SASL and SCRAM_PLUS not in data[4:].split(b"\x00"):
            raise PasswordNotSentError(
                "the server offers SCRAM without channel binding over TLS that is not verified"
                " (DB_SSLMODE=require): a relay could pass it on; use DB_SSLMODE=verify-full"
            )
        if code == AUTHENTICATION_OK and not self._scram_verified:
            raise PasswordNotSentError(
                "the server took the connection without authenticating itself by SCRAM over TLS"
                " that is not verified (DB_SSLMODE=require): refused; use DB_SSLMODE=verify-full"
            )
        super().handle_AUTHENTICATION_REQUEST(data, context)
        if code == SASL_FINAL:  # pg8000 has checked the server's signature (scramp)
            self._scram_verified = True


def _ssl_context(sslmode: str, root_cert: str | None) -> Any:
    if sslmode == "disable":
        return False  # pg8000's None would try unverified TLS first (libpq's "prefer")
    import ssl  # noqa: PLC0415 - only TLS connections pay for it

    # verify-full: the certificate chains to the bundle (or the system store) and names the host.
    context = ssl.create_default_context(cafile=root_cert)
    if sslmode == "require":  # encrypted, server not verified (libpq's "require")
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
