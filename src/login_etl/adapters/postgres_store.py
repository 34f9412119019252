"""``LoginStore`` on Postgres via pg8000: ledger insert + COPY, one transaction per batch."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pg8000.native

from login_etl.adapters.postgres_schema import (
    COLUMNS,
    LEDGER,
    SCHEMA_LOCK_KEY,
    SCHEMA_STATEMENTS,
    TABLE,
)
from login_etl.domain.models import UserLoginRow
from login_etl.ports import WriteResult

# SQLSTATE classes caused by a row's content (22 data exception, 23 integrity constraint):
# those rows are isolated and reported; anything else is an infrastructure failure.
_ROW_LEVEL_SQLSTATE_CLASSES = ("22", "23")
_IDLE_CHECK_SECONDS = 30.0

# The ids travel as one JSON array and only the ids already in the ledger (usually none) come
# back: pg8000 escapes a text[] parameter character by character in Python, and parses every
# returned row in Python too; both together were 40 % of a 10,000-record batch (cProfile).
_INSERT_LEDGER = f"""
WITH batch AS (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb)) AS message_id),
     added AS (INSERT INTO {LEDGER} (message_id) SELECT message_id FROM batch
               ON CONFLICT DO NOTHING RETURNING message_id)
SELECT message_id FROM batch EXCEPT ALL SELECT message_id FROM added
"""  # noqa: S608 - constant names only
_COPY_ROWS = f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")
NULL = "\\N"


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

    def __repr__(self) -> str:
        return (
            f"ConnectionParams(host={self.host!r}, port={self.port}, user={self.user!r},"
            f" database={self.database!r}, sslmode={self.sslmode!r})"
        )


class PostgresLoginStore:
    """Holds one connection per container, health-checked after idling, reopened when lost."""

    def __init__(self, params: ConnectionParams) -> None:
        self._params = params
        self._conn: pg8000.native.Connection | None = None
        self._last_used = 0.0

    def write(self, rows: Sequence[tuple[str, UserLoginRow]]) -> WriteResult:
        """All rows in one transaction, or none and the ids of the rows Postgres refused."""
        if not rows:
            return WriteResult()
        conn = self._connection()
        try:
            try:
                conn.run("START TRANSACTION")
                written = self._insert(conn, rows)
                conn.run("COMMIT")
                return WriteResult(written=written, duplicates=len(rows) - written)
            except pg8000.native.DatabaseError as error:
                if not _is_row_level(error):
                    raise
            # Some row is bad: find every such row under savepoints, then undo the whole
            # attempt so that the caller can write the rest (and honour FIFO order) in one go.
            conn.run("ROLLBACK")
            conn.run("START TRANSACTION")
            rejected: dict[str, str] = {}
            self._bisect(conn, rows, rejected)
            conn.run("ROLLBACK")
            return WriteResult(rejected=rejected)
        except BaseException:
            self.close()  # unknown connection state: the next invocation reconnects
            raise
        finally:
            self._last_used = time.monotonic()

    def close(self) -> None:
        """Drop the connection, ignoring errors from a connection that is already gone."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(pg8000.native.InterfaceError, OSError):
                conn.close()

    def _connection(self) -> pg8000.native.Connection:
        if self._conn is not None and time.monotonic() - self._last_used > _IDLE_CHECK_SECONDS:
            try:
                self._conn.run("SELECT 1")
            except (pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError):
                self.close()
        if self._conn is None:
            self._conn = connect(self._params)
            ensure_schema(self._conn)
        return self._conn

    def _insert(
        self, conn: pg8000.native.Connection, rows: Sequence[tuple[str, UserLoginRow]]
    ) -> int:
        ids = json.dumps([mid for mid, _ in rows])
        seen = {r[0] for r in conn.run(_INSERT_LEDGER, ids=ids)}
        payload = "".join(_copy_line(row) for mid, row in rows if mid not in seen)
        if payload:
            conn.run(_COPY_ROWS, stream=[payload.encode("utf-8")])
        return len(rows) - len(seen)

    def _bisect(
        self,
        conn: pg8000.native.Connection,
        rows: Sequence[tuple[str, UserLoginRow]],
        rejected: dict[str, str],
    ) -> None:
        conn.run("SAVEPOINT bisect")
        try:
            self._insert(conn, rows)
        except pg8000.native.DatabaseError as error:
            if not _is_row_level(error):
                raise
            conn.run("ROLLBACK TO SAVEPOINT bisect")
            if len(rows) == 1:
                rejected[rows[0][0]] = _sqlstate(error)
                return
            middle = len(rows) // 2
            self._bisect(conn, rows[:middle], rejected)
            self._bisect(conn, rows[middle:], rejected)
        else:
            conn.run("RELEASE SAVEPOINT bisect")


def connect(params: ConnectionParams) -> pg8000.native.Connection:
    """Open a connection with TLS as configured and a statement timeout."""
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
    conn.run(f"SET statement_timeout = {int(params.statement_timeout_ms)}")
    return conn


def ensure_schema(conn: pg8000.native.Connection) -> None:
    """Create what is missing, under an advisory lock so concurrent cold starts do not race."""
    conn.run("START TRANSACTION")
    try:
        conn.run("SELECT pg_advisory_xact_lock(:key)", key=SCHEMA_LOCK_KEY)
        for name, statement in SCHEMA_STATEMENTS:
            if not table_exists(conn, name):
                conn.run(statement)
        conn.run("COMMIT")
    except BaseException:
        conn.run("ROLLBACK")
        raise


def table_exists(conn: pg8000.native.Connection, name: str) -> bool:
    """Whether the table (or view) is there, on the connection's search path."""
    return bool(conn.run("SELECT to_regclass(:name) IS NOT NULL", name=name)[0][0])


def _ssl_context(sslmode: str) -> Any:
    if sslmode == "disable":
        return None
    import ssl  # noqa: PLC0415 - only TLS connections pay for it

    context = ssl.create_default_context()
    if sslmode == "require":  # encrypted, server not verified (libpq's "require")
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _copy_line(row: UserLoginRow) -> str:
    """One line of COPY's text format; tokens, version and date never need escaping."""
    locale = NULL if row.locale is None else _copy_text(row.locale)
    return (
        f"{_copy_text(row.user_id)}\t{_copy_text(row.device_type)}\t{row.masked_ip}\t"
        f"{row.masked_device_id}\t{locale}\t{row.app_version}\t{row.create_date}\n"
    )


def _copy_text(text: str) -> str:
    # Searching first is twice as fast as translating every field (which rarely needs it).
    return text.translate(_COPY_ESCAPES) if _NEEDS_ESCAPE.search(text) else text


def _sqlstate(error: pg8000.native.DatabaseError) -> str:
    details = error.args[0] if error.args else None
    return str(details.get("C", "")) if isinstance(details, dict) else ""


def _is_row_level(error: pg8000.native.DatabaseError) -> bool:
    return _sqlstate(error).startswith(_ROW_LEVEL_SQLSTATE_CLASSES)
