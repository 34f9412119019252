"""``LoginStore`` on Postgres via pg8000: ledger insert + COPY, one transaction per batch.

A message counts as written only when the COMMIT that holds its row (or its ledger entry)
succeeded. When Postgres refuses the batch because of some rows' content, at any statement
including COMMIT (deferred constraints), nothing is acknowledged on this attempt: the refused
rows are identified (``postgres_isolation``) and reported, and the caller writes the rest in a
new transaction. A refusal that no row can be blamed for raises
(``UnattributedRefusalError``), so the whole batch is retried.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import date

import pg8000.native

from login_etl.adapters.postgres_connection import (
    ConnectionParams,
    ConnectionParamsSource,
    FixedParams,
    Session,
    begin,
    begin_session,
    close_quietly,
    end_backend,
    open_session,
    sqlstate,
)
from login_etl.adapters.postgres_isolation import find_refused_rows, is_row_level
from login_etl.adapters.postgres_ledger import record_ids
from login_etl.adapters.postgres_schema import (
    COLUMNS,
    OPTIONAL_SCHEMA_STATEMENTS,
    PRUNE_LEDGER_BATCH,
    SCHEMA_LOCK_KEY,
    SCHEMA_STATEMENTS,
    TABLE,
    copy_text,
)
from login_etl.adapters.postgres_stream import StreamedWrite
from login_etl.domain.models import UserLoginRow
from login_etl.ports import WriteResult

_IDLE_CHECK_SECONDS = 30.0
_COPY_ROWS = f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN"
_DAY_TEXT: dict[date, str] = {}
_DAY_TEXT_MAX = 1_024
NULL = "\\N"
# The streamed write pays off from a few hundred rows: below, the writer thread and its
# hand-overs cost more than the overlap saves. Measured interleaved against the serial write
# (process_batch, throwaway Postgres, 2 cores; median of per-round ratios, speed of the
# streamed write with the switch interval below / serial): 100 rows 0.95x, 500 1.06x,
# 1,000 1.16x, 10,000 1.40x (1.00x, 1.03x and 1.24x with Python's default 5 ms interval).
STREAM_MIN_ROWS = 500
# Rows per chunk handed to the writer. Each hand-over costs the masking thread GIL switches:
# at 10,000 rows, 1,000, 2,000 and 4,000 measured alike and 8 % faster than 500 (handler,
# interleaved in turn, 20 rounds). The runs shared the mask cache across the variants of a
# round, so their ratios to the floor (1.07 to 1.16) were inflated; the positions rotated, so
# the variants' comparison with each other stands.
STREAM_CHUNK_ROWS = 1_000
# The last STREAM_TAIL_ROWS rows go in chunks of STREAM_TAIL_CHUNK_ROWS: what Postgres still
# has to write once the last row is made is the batch's tail, on the critical path (Postgres's
# COPY takes 4.4 µs a row in the floor: 2.2 ms for 500 rows, 0.4 ms for 100).
STREAM_TAIL_ROWS = 500
STREAM_TAIL_CHUNK_ROWS = 100
# While the writer runs, the masking thread holds the GIL; the writer needs it for a moment
# after each of its round trips (begin, ledger insert, COPY set-up) and for each chunk, and
# Python hands it over only every switch interval (5 ms by default): the COPY started late.
# Process-wide, so set for the streamed write only and restored after.
WRITER_SWITCH_INTERVAL_S = 0.0005


class PostgresLoginStore:
    """Holds one connection per container, health-checked after idling, reopened when lost."""

    def __init__(self, params: ConnectionParams | ConnectionParamsSource) -> None:
        self._source = FixedParams(params) if isinstance(params, ConnectionParams) else params
        self._session: Session | None = None
        self._last_used = 0.0

    def write(self, rows: Sequence[tuple[str, UserLoginRow]]) -> WriteResult:
        """All rows in one transaction, or none and the ids of the rows Postgres refused."""
        if not rows:
            return WriteResult()
        session = self._connection()
        conn = session.conn
        try:
            try:
                begin_session(session)
                written = self._insert(session, rows)
                conn.run("COMMIT")
                return WriteResult(written=written, duplicates=len(rows) - written)
            except pg8000.native.DatabaseError as error:
                state = sqlstate(error)
                if not is_row_level(state):
                    raise
            # After a failed COMMIT the transaction is already gone; ROLLBACK only warns.
            conn.run("ROLLBACK")
            return WriteResult(rejected=find_refused_rows(session, rows, state))
        except (pg8000.native.InterfaceError, OSError):
            # The client gave up or lost the line: the server may still run the statement and
            # hold its locks. End that session before the retry waits on them.
            self._abandon(session)
            raise
        except BaseException:
            self.close()  # unknown transaction state: the next invocation reconnects
            raise
        finally:
            self._last_used = time.monotonic()

    def _abandon(self, session: Session) -> None:
        """Close the connection and end the server process of its transaction, if one began.

        With fresh parameters: an IAM token made at the connect has expired 15 minutes later,
        and the second connection that ends the process would be refused (found in review).
        """
        self.close()
        try:
            params = self._source.params()
        except Exception:
            params = session.params
        end_backend(params, session.backend_pid)

    def prune(self, retention_s: float, batch_rows: int, keep_going: Callable[[], bool]) -> int:
        """Delete ledger entries older than ``retention_s``, one short transaction a batch."""
        session = self._connection()
        deleted = 0
        try:
            while keep_going():
                begin_session(session)
                session.conn.run(PRUNE_LEDGER_BATCH, retention_s=retention_s, rows=batch_rows)
                batch = session.conn.row_count
                session.conn.run("COMMIT")
                deleted += batch
                if batch < batch_rows:
                    break
        except BaseException:
            self.close()
            raise
        finally:
            self._last_used = time.monotonic()
        return deleted

    def close(self) -> None:
        """Drop the connection, ignoring errors from a connection that is already gone."""
        session, self._session = self._session, None
        if session is not None:
            close_quietly(session.conn)

    def _connection(self) -> Session:
        session = self._session
        if session is not None and time.monotonic() - self._last_used > _IDLE_CHECK_SECONDS:
            try:
                session.conn.run("SELECT 1")
            except (pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError):
                self.close()
        if self._session is None:
            session = open_session(self._source)
            try:
                ensure_schema(session.conn, session.params)
            except BaseException:
                close_quietly(session.conn)
                raise
            self._session = session
        return self._session

    def write_streamed(self, keys: Sequence[str], rows: Iterable[UserLoginRow]) -> WriteResult:
        """``write``, with the ledger insert and the COPY running while the rows are made.

        The same transaction, statements and outcomes as ``write`` (``postgres_stream``); the
        rows are formatted here and handed to the writer thread STREAM_CHUNK_ROWS at a time
        (the last STREAM_TAIL_ROWS in smaller chunks).
        Fewer than STREAM_MIN_ROWS rows are simply made, then written.
        """
        if len(keys) < STREAM_MIN_ROWS:
            return self.write(list(zip(keys, rows, strict=True)))
        interval = sys.getswitchinterval()
        sys.setswitchinterval(WRITER_SWITCH_INTERVAL_S)
        try:
            return self._write_streamed(keys, rows)
        finally:
            sys.setswitchinterval(interval)

    def _write_streamed(self, keys: Sequence[str], rows: Iterable[UserLoginRow]) -> WriteResult:
        session = self._connection()
        conn = session.conn
        made: list[UserLoginRow] = []
        session.backend_pid = 0  # the writer's begin sets it: never end a stale one
        writer = StreamedWrite(session, _COPY_ROWS, keys)
        try:
            _hand_over(writer, len(keys), zip(keys, rows, strict=True), made)
        except BaseException:
            writer.abort()  # the COPY fails, nothing commits; the connection's state is unknown
            self._abandon(session)
            raise
        try:
            try:
                writer.finish()
                return WriteResult(written=writer.written, duplicates=writer.duplicates)
            except pg8000.native.DatabaseError as error:
                state = sqlstate(error)
                if not is_row_level(state):
                    raise
            conn.run("ROLLBACK")
            given = list(zip(keys, made, strict=True))
            return WriteResult(rejected=find_refused_rows(session, given, state))
        except (pg8000.native.InterfaceError, OSError):
            self._abandon(session)
            raise
        except BaseException:
            # Interrupted while the writer still runs (Ctrl-C or SIGTERM in ``finish``): stop
            # it, and end its server session, which may be waiting on a lock and holding the
            # ledger ids it locked before (closing the socket alone does not end a lock wait).
            running = writer.running
            writer.abort()
            if running:
                self._abandon(session)
            else:
                self.close()
            raise
        finally:
            self._last_used = time.monotonic()

    def _insert(self, session: Session, rows: Sequence[tuple[str, UserLoginRow]]) -> int:
        conn = session.conn
        seen = record_ids(session, [mid for mid, _ in rows])
        payload = "".join(_copy_line(row) for mid, row in rows if mid not in seen)
        if payload:
            conn.run(_COPY_ROWS, stream=[payload.encode("utf-8")])
        return len(rows) - len(seen)


def _hand_over(
    writer: StreamedWrite,
    count: int,
    rows: Iterable[tuple[str, UserLoginRow]],
    made: list[UserLoginRow],
) -> None:
    """Make the rows (kept in ``made``) and hand their COPY lines to the writer in chunks."""
    lines: list[str] = []
    tail = count - STREAM_TAIL_ROWS  # from here, smaller chunks
    # How many rows are made at the next send. A batch of STREAM_TAIL_ROWS rows or fewer is
    # all tail: with min(..., tail) = 0, no send was ever due, and its rows went in one chunk
    # after the last was made (found in review).
    send_at = min(STREAM_CHUNK_ROWS, tail) if tail > 0 else STREAM_TAIL_CHUNK_ROWS
    for _, row in rows:  # one row per id, or ValueError (zip's strict)
        made.append(row)
        lines.append(_copy_line(row))
        if len(made) == send_at:
            writer.send(send_at - len(lines), lines)
            lines = []
            if send_at < tail:
                send_at = min(send_at + STREAM_CHUNK_ROWS, tail)
            else:
                send_at += STREAM_TAIL_CHUNK_ROWS
    if lines:
        writer.send(len(made) - len(lines), lines)


def ensure_schema(conn: pg8000.native.Connection, params: ConnectionParams | None = None) -> None:
    """Create what is missing, under an advisory lock so concurrent cold starts do not race.

    ``params``: run under the function's statement timeout (the operator tools pass none).
    The optional objects (the analysts' view) are tried under a savepoint: one that cannot be
    made is left out, never a reason to stop writing.
    """
    if params is None:
        conn.run("START TRANSACTION")
    else:
        begin(conn, params)
    try:
        conn.run("SELECT pg_advisory_xact_lock(:key)", key=SCHEMA_LOCK_KEY)
        for name, statement in SCHEMA_STATEMENTS:
            if not table_exists(conn, name):
                conn.run(statement)
        for name, statement in OPTIONAL_SCHEMA_STATEMENTS:
            if not table_exists(conn, name):
                conn.run("SAVEPOINT optional_object")
                try:
                    conn.run(statement)
                except pg8000.native.DatabaseError:
                    conn.run("ROLLBACK TO SAVEPOINT optional_object")
                conn.run("RELEASE SAVEPOINT optional_object")
        conn.run("COMMIT")
    except BaseException:
        conn.run("ROLLBACK")
        raise


def table_exists(conn: pg8000.native.Connection, name: str) -> bool:
    """Whether the table (or view) is there, on the connection's search path."""
    return bool(conn.run("SELECT to_regclass(:name) IS NOT NULL", name=name)[0][0])


def _copy_line(row: UserLoginRow) -> str:
    """One line of COPY's text format; tokens, version and date never need escaping.

    The date's text is kept per day (``{date}`` in an f-string formats it anew: a quarter of
    this function), and the three free-text fields are searched for characters to escape in
    one go, four ``in`` rather than a regex, as they rarely have any (callgrind: 15,100
    instructions a line down to 8,200, then 7,000).
    """
    user_id, device_type, ip, device_id, locale, version, day = row
    day_text = _DAY_TEXT.get(day)
    if day_text is None:
        day_text = day.isoformat()
        if len(_DAY_TEXT) < _DAY_TEXT_MAX:
            _DAY_TEXT[day] = day_text
    free_text = f"{user_id}{device_type}{locale or ''}"
    if "\\" in free_text or "\t" in free_text or "\n" in free_text or "\r" in free_text:
        user_id, device_type = copy_text(user_id), copy_text(device_type)
        locale = None if locale is None else copy_text(locale)
    text = NULL if locale is None else locale
    return f"{user_id}\t{device_type}\t{ip}\t{device_id}\t{text}\t{version}\t{day_text}\n"
