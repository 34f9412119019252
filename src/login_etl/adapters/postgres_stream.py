"""One batch's transaction run by a writer thread while the caller is still making the rows.

Written serially, a batch costs its Python work (mask, format) plus Postgres's (the ledger
insert, the COPY), one waiting for the other; Postgres runs in its own process, on another
core. Here a writer thread holds the connection for the transaction:

1. ``START TRANSACTION``, then the ledger insert of every message id (they are known before
   any row is masked), while the caller masks;
2. ``COPY ... FROM STDIN``, fed chunk by chunk as the caller hands them over: Postgres parses
   and inserts a chunk while the next one is masked; the rows of ids already in the ledger are
   left out, as in the serial write;
3. ``COMMIT`` once the caller has handed over the last chunk.

The statements, their order and the transaction are those of the serial write: the guarantees
do not change. A refusal (at any of them, COMMIT included) or a lost connection reaches the
caller as the same exception, once every row has been handed over (the caller needs them all
to isolate the refused ones). pg8000 is blocking and releases the GIL while it waits on the
socket, so the thread costs the caller only the moments it sends a chunk.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Sequence
from queue import SimpleQueue

from login_etl.adapters.postgres_connection import Session, begin_session
from login_etl.adapters.postgres_ledger import record_ids

_END = "end"  # the caller handed over every chunk
_ABORT = "abort"  # the caller failed: the COPY must not complete


class AbortedError(RuntimeError):
    """The caller gave up on the batch; raised inside the COPY so that it never completes."""


class StreamedWrite:
    """The writer thread of one batch. ``send`` chunks, then ``finish`` (or ``abort``)."""

    def __init__(self, session: Session, copy_statement: str, keys: Sequence[str]) -> None:
        self._session, self._copy, self._keys = session, copy_statement, keys
        self._chunks: SimpleQueue[tuple[int, list[str]] | str] = SimpleQueue()
        self._error: BaseException | None = None
        self.written = 0
        self.duplicates = 0
        # Set when _run returns. Not Thread.is_alive()/join(): on Python 3.11 a join that a
        # signal interrupts (Ctrl-C, the CLI's SIGTERM) marks the thread stopped while it
        # still runs, and every later join returns at once (bpo-45274's fix, gh-90882).
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="login-etl-writer", daemon=True)
        self._thread.start()

    def send(self, start: int, lines: list[str]) -> None:
        """Hand over the COPY lines of the rows of ids ``start``, ``start + 1``, ..."""
        self._chunks.put((start, lines))

    def finish(self) -> None:
        """Wait for COPY and COMMIT; raise what the writer raised (DatabaseError, ...)."""
        self._chunks.put(_END)
        self._done.wait()
        if self._error is not None:
            raise self._error

    @property
    def running(self) -> bool:
        """Whether the writer thread has not finished yet."""
        return not self._done.is_set()

    def abort(self) -> None:
        """The caller failed: make the COPY fail, and stop a writer blocked on the socket."""
        self._chunks.put(_ABORT)
        # A writer waiting for the ledger insert's answer (a lock, a slow server) would only
        # notice after it; shutting the socket down ends that wait at once.
        with contextlib.suppress(OSError, AttributeError):
            self._session.conn._usock.shutdown(socket.SHUT_RDWR)
        self._done.wait()

    def _run(self) -> None:
        session = self._session
        conn = session.conn
        try:
            # The server process of this transaction, for a caller that must end it.
            begin_session(session)
            seen = record_ids(session, self._keys)
            timeout_ms = int(session.params.statement_timeout_ms)
            # The COPY lasts as long as our masking, which is not the database's work: under
            # statement_timeout, a batch masked slowly (a throttled small Lambda, a lowered
            # timeout) was cancelled on every delivery and dead-lettered whole (found in
            # review). The COPY waits for no lock longer than the timeout, and a server that
            # stops answering is caught by the client's read timeout, as before.
            conn.run(f"SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = {timeout_ms}")
            conn.run(self._copy, stream=self._lines(seen))
            conn.run(f"SET LOCAL statement_timeout = {timeout_ms}; COMMIT")
        except BaseException as error:
            self._error = error
        finally:
            self._done.set()

    def _lines(self, seen: set[str]) -> Iterator[str]:
        """The chunks as they come, without the rows of ids already in the ledger."""
        while True:
            chunk = self._chunks.get()
            if isinstance(chunk, str):
                if chunk == _END:
                    return
                raise AbortedError("the batch was abandoned while its rows were being made")
            start, lines = chunk
            if seen:
                keys = self._keys[start : start + len(lines)]
                if not seen.isdisjoint(keys):
                    lines = [line for key, line in zip(keys, lines, strict=True) if key not in seen]
                    self.duplicates += len(keys) - len(lines)
            self.written += len(lines)
            if lines:
                yield "".join(lines)
