"""``LoginStore`` on Postgres via pg8000: ledger insert + COPY, one transaction per batch.

A message counts as written only when the COMMIT that holds its row (or its ledger entry)
succeeded. When Postgres refuses the batch because of some rows' content, at any statement
including COMMIT (deferred constraints), nothing is acknowledged on this attempt: the refused
rows are identified (``isolation``) and reported, and the caller writes the rest in a new
transaction. A refusal that no row can be blamed for raises (``UnattributedRefusalError``),
so the whole batch is retried.

The rows are made (masked, and as COPY text) before the transaction begins, and the whole
transaction goes out in one message, with all its data: the begin and its timeouts, the
ledger's ``COPY``, the rows' ``COPY``, the COMMIT. A batch is one round trip, the transaction
lasts only as long as Postgres's work, and the server never waits on the client in the middle
of it (docs/guarantees.md, "Deadlines"). A redelivery (ids recorded already) takes a second
transaction (``ledger``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pg8000.native

from login_etl.adapters.postgres.connection import (
    ConnectionParams,
    set_read_timeout,
    sqlstate,
)
from login_etl.adapters.postgres.copy_rows import copy_payload
from login_etl.adapters.postgres.credentials import ConnectionParamsSource, FixedParams
from login_etl.adapters.postgres.ledger import copy_of, insert_ids, refused_by_ledger
from login_etl.adapters.postgres.schema import (
    COLUMNS,
    LEDGER_PAGES,
    PRUNE_LEDGER_PAGES,
    READ_PRUNE_POSITION,
    SAVE_PRUNE_POSITION,
    TABLE,
    ensure_schema,
)
from login_etl.adapters.postgres.transaction import Session, open_session, transaction
from login_etl.deadline import Deadline
from login_etl.domain.models import UserLoginRow
from login_etl.ports import WriteResult

COPY_ROWS = f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN"
# The most ledger entries an 8 kB page holds (a UUID id and a timestamp, with their overhead).
ENTRIES_PER_FULL_PAGE = 291.0
# A connection idle for longer is checked before use: a server restart, a failover or a
# proxy's idle timeout may have closed it meanwhile.
IDLE_CHECK_SECONDS = 30.0


class PostgresLoginStore:
    """Holds one connection per container, health-checked after idling, reopened when lost."""

    def __init__(self, params: ConnectionParams | ConnectionParamsSource) -> None:
        self._source = FixedParams(params) if isinstance(params, ConnectionParams) else params
        self._session: Session | None = None
        self._last_used = 0.0

    def write(
        self, rows: Sequence[tuple[str, UserLoginRow]], deadline: Deadline | None = None
    ) -> WriteResult:
        """All rows in one transaction, or none and the ids of the rows Postgres refused."""
        if not rows:
            return WriteResult()
        ids = [message_id for message_id, _ in rows]
        # Made before the transaction: the ledger's locks wait on no Python work.
        copies = [copy_of(ids), (COPY_ROWS, copy_payload([row for _, row in rows]))]
        session = self._connection(deadline)
        try:
            with transaction(session, deadline, deferred=True):  # begun in the same message
                try:
                    session.copy_in(copies, commit=True)
                except pg8000.native.DatabaseError as error:
                    if not refused_by_ledger(session, error):
                        raise
                else:
                    return WriteResult(written=len(rows))
                seen = insert_ids(session, ids, deadline)  # a redelivery: the others' rows
                payload = copy_payload([row for mid, row in rows if mid not in seen])
                if payload:
                    session.copy_in([(COPY_ROWS, payload)], commit=True)
                else:
                    session.end("COMMIT")
            return WriteResult(written=len(rows) - len(seen), duplicates=len(seen))
        except pg8000.native.DatabaseError as error:
            # Imported on a database error only: rare, and not for the cold start to pay.
            from login_etl.adapters.postgres.isolation import (  # noqa: PLC0415
                find_refused_rows,
                is_row_level,
            )

            state = sqlstate(error)
            if session.lost or not is_row_level(state):
                raise
        finally:
            self._last_used = time.monotonic()
        return WriteResult(rejected=find_refused_rows(session, rows, state, deadline))

    def prune(
        self,
        retention_s: float,
        batch_rows: int,
        keep_going: Callable[[], bool],
        deadline: Deadline | None = None,
    ) -> int:
        """Delete ledger entries older than ``retention_s``: a walk over the ledger's pages,
        about ``batch_rows`` entries' worth of pages a step, one short transaction each, from
        where the last run stopped, once round the heap at most."""
        deleted = 0
        try:
            session = self._connection(deadline)
            with transaction(session, deadline):
                pages, per_page, has_position = session.run(LEDGER_PAGES)[0]
                position = session.run(READ_PRUNE_POSITION) if has_position else []
                session.end("COMMIT")
            # Never analyzed (-1): assume full pages, the fewest entries' worth of pages a step.
            per_page = float(per_page) if per_page > 0 else ENTRIES_PER_FULL_PAGE
            step = max(1, int(batch_rows / per_page))
            page = int(position[0][0]) % pages if position and pages else 0
            walked = 0
            while walked < pages and keep_going():
                after = min(page + step, pages)
                session = self._connection(deadline)
                with transaction(session, deadline):
                    session.run(
                        PRUNE_LEDGER_PAGES, first=page, after=after, retention_s=retention_s
                    )
                    step_deleted = session.conn.row_count
                    if has_position:
                        session.run(SAVE_PRUNE_POSITION, page=after % pages)
                    session.end("COMMIT")
                deleted += step_deleted
                walked += after - page
                page = after % pages
        finally:
            self._last_used = time.monotonic()
        return deleted

    def close(self) -> None:
        """Drop the connection, ignoring errors from a connection that is already gone."""
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def _connection(self, deadline: Deadline | None) -> Session:
        session = self._session
        if session is not None and not session.lost and self._idle_too_long():
            timeout_s = self._source.params().connect_timeout_s
            if deadline is not None:
                timeout_s = min(timeout_s, deadline.check())
            set_read_timeout(session.conn, timeout_s)
            try:
                session.conn.run("SELECT 1")
            except (pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError):
                session.close()
        if session is None or session.lost:
            self._session = None
            session = open_session(self._source, deadline)
            try:
                ensure_schema(session, deadline)
            except BaseException:
                session.close()
                raise
            self._session = session
        return session

    def _idle_too_long(self) -> bool:
        return time.monotonic() - self._last_used > IDLE_CHECK_SECONDS
