"""The ledger's prune, timed step by step: the function's page walk and the previous design.

* ``pages``: the real ``PostgresLoginStore.prune`` (a walk over the heap's pages, about
  ``batch_rows`` entries' worth of pages a step, a TID range scan each). Its steps are timed
  through ``keep_going``, which the store calls before each one: no hook in the function.
* ``limit``: the previous design, kept here only, for comparison: each step deletes up to
  ``batch_rows`` old entries found by a sequential scan with ``LIMIT``, until a step finds
  fewer; once new entries fill freed space at the heap's head, that scan reads past them, and
  the last step reads the whole ledger.

A run goes in a process of its own (as the function's prune runs in an invocation of its
own), so that the writer timed beside it in this process shares no interpreter with it.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection as Pipe

from login_etl.adapters.postgres.connection import ConnectionParams, close_quietly, connect
from login_etl.adapters.postgres.store import PostgresLoginStore

PAGES = "pages"
LIMIT = "limit"
DESIGNS = {
    PAGES: "page walk (the function's, TID range scans)",
    LIMIT: "LIMIT scan (the previous design)",
}
PREVIOUS_PRUNE = """
DELETE FROM login_etl_processed_messages WHERE ctid = ANY(ARRAY(
  SELECT ctid FROM login_etl_processed_messages
  WHERE processed_at < now() - make_interval(secs => CAST(:retention_s AS double precision))
  LIMIT CAST(:rows AS integer)))
"""


@dataclass(frozen=True, slots=True)
class PruneRun:
    """One run of one design: what it deleted, each step's time and the whole run's."""

    design: str
    deleted: int
    steps_s: tuple[float, ...]
    total_s: float


def step_seconds(step_starts: list[float], ended: float) -> tuple[float, ...]:
    """Each step's time, from the moments the steps began and the moment the run ended."""
    if not step_starts:
        return ()
    return tuple(
        end - start for start, end in zip(step_starts, [*step_starts[1:], ended], strict=True)
    )


def run_pages(params: ConnectionParams, retention_s: float, batch_rows: int) -> PruneRun:
    """The function's own prune, through the store, its steps timed by ``keep_going``."""
    store = PostgresLoginStore(params)
    try:
        store.prune(retention_s, batch_rows, lambda: False)  # connected, schema checked
        step_starts: list[float] = []

        def keep_going() -> bool:
            step_starts.append(time.perf_counter())
            return True

        started = time.perf_counter()
        deleted = store.prune(retention_s, batch_rows, keep_going)
        ended = time.perf_counter()
    finally:
        store.close()
    return PruneRun(PAGES, deleted, step_seconds(step_starts, ended), ended - started)


def run_limit(params: ConnectionParams, retention_s: float, batch_rows: int) -> PruneRun:
    """The previous design: scan for old entries, ``batch_rows`` at most a transaction, until
    a step deletes fewer; no statement timeout, so that its longest step is measured whole."""
    conn = connect(replace(params, statement_timeout_ms=0))
    steps: list[float] = []
    deleted = 0
    try:
        started = time.perf_counter()
        while True:
            step_started = time.perf_counter()
            conn.run("START TRANSACTION")
            conn.run(PREVIOUS_PRUNE, retention_s=retention_s, rows=batch_rows)
            step_deleted = conn.row_count
            conn.run("COMMIT")
            steps.append(time.perf_counter() - step_started)
            deleted += step_deleted
            if step_deleted < batch_rows:
                break
        ended = time.perf_counter()
    finally:
        close_quietly(conn)
    return PruneRun(LIMIT, deleted, tuple(steps), ended - started)


RUNNERS: dict[str, Callable[[ConnectionParams, float, int], PruneRun]] = {
    PAGES: run_pages,
    LIMIT: run_limit,
}


def _run_and_send(
    send: Pipe, design: str, params: ConnectionParams, retention_s: float, batch_rows: int
) -> None:
    try:
        send.send(RUNNERS[design](params, retention_s, batch_rows))
    except BaseException as error:
        send.send(error)
        raise


def prune_beside(
    design: str,
    params: ConnectionParams,
    retention_s: float,
    batch_rows: int,
    writer: Callable[[], float],
) -> tuple[PruneRun, list[float]]:
    """One prune run in a process of its own, and ``writer``'s batches (seconds each)
    started while it ran, in this process."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=_run_and_send, args=(send, design, params, retention_s, batch_rows)
    )
    child.start()
    send.close()
    batches: list[float] = []
    try:
        while not receive.poll():
            batches.append(writer())
        result = receive.recv()
    finally:
        child.join()
    if isinstance(result, PruneRun):
        return result, batches
    raise RuntimeError(f"the {design} prune failed: {result!r}")
