"""``LoginStore`` on Postgres via pg8000: ledger insert + COPY, one transaction per batch.

A message counts as written only when the COMMIT that holds its row (or its ledger entry)
succeeded. When Postgres refuses the batch because of some rows' content, at any statement
including COMMIT (deferred constraints), nothing is acknowledged on this attempt: the refused
rows are identified (``postgres_isolation``) and reported, and the caller writes the rest in a
new transaction. A refusal that no row can be blamed for raises
(``UnattributedRefusalError``), so the whole batch is retried.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence

import pg8000.native

from login_etl.adapters.postgres_connection import (
    ConnectionParams,
    ConnectionParamsSource,
    FixedParams,
    Session,
    begin,
    close_quietly,
    end_backend,
    open_session,
    sqlstate,
)
from login_etl.adapters.postgres_isolation import find_refused_rows, is_row_level
from login_etl.adapters.postgres_schema import (
    COLUMNS,
    INSERT_LEDGER,
    OPTIONAL_SCHEMA_STATEMENTS,
    PRUNE_LEDGER_BATCH,
    SCHEMA_LOCK_KEY,
    SCHEMA_STATEMENTS,
    TABLE,
)
from login_etl.domain.models import UserLoginRow
from login_etl.ports import WriteResult

_IDLE_CHECK_SECONDS = 30.0
_COPY_ROWS = f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")
NULL = "\\N"


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
        conn, params = session.conn, session.params
        try:
            try:
                session.backend_pid = begin(conn, params)
                written = self._insert(conn, rows)
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
            self.close()
            end_backend(params, session.backend_pid)
            raise
        except BaseException:
            self.close()  # unknown transaction state: the next invocation reconnects
            raise
        finally:
            self._last_used = time.monotonic()

    def prune(self, retention_s: float, batch_rows: int, keep_going: Callable[[], bool]) -> int:
        """Delete ledger entries older than ``retention_s``, one short transaction a batch."""
        session = self._connection()
        deleted = 0
        try:
            while keep_going():
                session.backend_pid = begin(session.conn, session.params)
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

    def _insert(
        self, conn: pg8000.native.Connection, rows: Sequence[tuple[str, UserLoginRow]]
    ) -> int:
        ids = json.dumps([mid for mid, _ in rows])
        seen = {r[0] for r in conn.run(INSERT_LEDGER, ids=ids)}
        payload = "".join(_copy_line(row) for mid, row in rows if mid not in seen)
        if payload:
            conn.run(_COPY_ROWS, stream=[payload.encode("utf-8")])
        return len(rows) - len(seen)


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
    """One line of COPY's text format; tokens, version and date never need escaping."""
    locale = NULL if row.locale is None else _copy_text(row.locale)
    return (
        f"{_copy_text(row.user_id)}\t{_copy_text(row.device_type)}\t{row.masked_ip}\t"
        f"{row.masked_device_id}\t{locale}\t{row.app_version}\t{row.create_date}\n"
    )


def _copy_text(text: str) -> str:
    # Searching first is twice as fast as translating every field (which rarely needs it).
    return text.translate(_COPY_ESCAPES) if _NEEDS_ESCAPE.search(text) else text
