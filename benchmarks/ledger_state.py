"""A ledger in a steady state for ``make bench-ledger``: filled, then aged, written and pruned.

The fill spreads ``size`` entries evenly over the retention window, oldest first on disk, as a
ledger written for a whole window and never pruned would be. Then every cycle:

* the writers add fresh entries through the real store (``PostgresLoginStore.write``);
* time passes: the window moves on by as much time as the fill's density needs for as many
  entries to fall out of it as were added since the last prune (so the ledger keeps its size);
* a prune run deletes them, and ``VACUUM`` (autovacuum's part) frees their space, where the
  next cycle's fresh entries go: new entries at the heap's head, old ones behind them.

Time passes by a clock of the benchmark's (``LedgerClock``), not by rewriting the entries (at
50 M entries, an UPDATE of every row per cycle would rewrite the heap each time): the prune is
asked for a window shorter by the time that passed. An entry written during the run then looks
older than it is by the time that had passed when it was written, which changes nothing as
long as all the time that passes stays well within one window (checked).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass, replace

import pg8000.native

from login_etl.adapters.postgres.connection import ConnectionParams, connect
from login_etl.adapters.postgres.schema import LEDGER
from login_etl.adapters.postgres.store import PostgresLoginStore
from login_etl.domain.models import UserLoginRow

BATCH = 10_000
ROW = UserLoginRow("u", "ios", "t" * 120, "d" * 120, "RU", 2_003_000, dt.date(2026, 11, 25))
# The time that passes over a run stays below this share of the window (LedgerClock).
MAX_SHARE_OF_WINDOW = 0.5

# One sort of fresh UUIDs, then an insert in their order: the primary key grows at its right
# edge (5 M entries in 27 s here, against 50 s in random order, which slows further as the index
# outgrows memory), and the heap is in time order, oldest first. The fill's index is as dense
# as one built by CREATE INDEX; the writers' random ids then split its pages as they would in a
# ledger that grew by itself.
FILL = f"""
INSERT INTO {LEDGER} (message_id, processed_at)
SELECT id::text, CAST(:at AS timestamptz) - make_interval(secs =>
         CAST(:size - row_number() OVER (ORDER BY id) AS double precision) / :size * :window_s)
FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, :size)) AS ids
ORDER BY id
"""  # noqa: S608 - constant names only
# The layout after the cycles: where the first entry of the fill still there is, and how many
# of the entries written since are ahead of it in the heap.
LAYOUT = f"""
WITH first_old AS (SELECT min(ctid) AS tid FROM {LEDGER} WHERE processed_at <= :at)
SELECT (SELECT tid FROM first_old)::text,
       count(*) FILTER (WHERE processed_at > :at AND ctid < (SELECT tid FROM first_old)),
       count(*) FILTER (WHERE processed_at > :at),
       count(*)
FROM {LEDGER}
"""  # noqa: S608 - constant names only
SIZES = f"""
SELECT pg_relation_size('{LEDGER}') / current_setting('block_size')::bigint,
       pg_relation_size('{LEDGER}'), pg_indexes_size('{LEDGER}'), reltuples::bigint
FROM pg_class WHERE oid = '{LEDGER}'::regclass
"""  # noqa: S608 - constant names only


class LedgerTooSmallError(RuntimeError):
    """The run would move the clock by too large a share of the window."""


@dataclass(slots=True)
class LedgerClock:
    """The benchmark's time for one ledger: how far the window has moved on, and how many
    entries were written since the last prune."""

    size: int
    window_s: float
    passed_s: float = 0.0
    written: int = 0

    def written_now(self, entries: int) -> None:
        """Fresh entries went into the ledger."""
        self.written += entries

    def retention_for_prune(self) -> float:
        """Move on by the time in which as many entries fall out of the window as were
        written since the last prune; the window the prune is asked for from now on."""
        self.passed_s += self.written * self.window_s / self.size
        self.written = 0
        if self.passed_s > MAX_SHARE_OF_WINDOW * self.window_s:
            raise LedgerTooSmallError(
                f"{self.size:,} entries: the cycles wrote {self.passed_s / self.window_s:.0%}"
                " of the ledger again; fewer cycles or rounds, or a larger ledger"
            )
        return self.window_s - self.passed_s


@dataclass(frozen=True, slots=True)
class LedgerSizes:
    """The ledger's size on disk, and its entries as the last VACUUM or ANALYZE counted them."""

    pages: int
    heap_bytes: int
    index_bytes: int
    entries: int


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the entries written during the run are, against the fill's oldest remaining one."""

    first_old_tid: str
    fresh_ahead: int
    fresh: int
    entries: int


def admin_connection(params: ConnectionParams) -> pg8000.native.Connection:
    """A connection without a statement timeout: filling and vacuuming 50 M take minutes."""
    return connect(replace(params, statement_timeout_ms=0))


def fill(params: ConnectionParams, size: int, window_s: float) -> dt.datetime:
    """The function's tables, and ``size`` entries spread over the last ``window_s``; returns
    the fill's time (entries after it were written during the run)."""
    store = PostgresLoginStore(params)
    try:
        store.write([(str(uuid.uuid4()), ROW)])  # the function's own DDL
    finally:
        store.close()
    conn = admin_connection(params)
    try:
        conn.run(f"TRUNCATE {LEDGER}")
        at: dt.datetime = conn.run("SELECT now()")[0][0]
        conn.run("SET work_mem = '256MB'")  # the sort of the ids
        conn.run(FILL, at=at, size=size, window_s=window_s)
        conn.run(f"VACUUM ANALYZE {LEDGER}")
    finally:
        conn.close()
    return at


def vacuum(conn: pg8000.native.Connection) -> float:
    """What autovacuum does after a prune: the deleted entries' space is free again. Seconds."""
    started = time.perf_counter()
    conn.run(f"VACUUM {LEDGER}")
    return time.perf_counter() - started


def sizes(conn: pg8000.native.Connection) -> LedgerSizes:
    """The ledger's pages, heap and index bytes, and entries (as last counted)."""
    pages, heap, index, entries = conn.run(SIZES)[0]
    return LedgerSizes(int(pages), int(heap), int(index), int(entries))


def layout(conn: pg8000.native.Connection, filled_at: dt.datetime) -> Layout:
    """Two scans of the whole ledger: for the end of a run only."""
    tid, ahead, fresh, entries = conn.run(LAYOUT, at=filled_at)[0]
    return Layout(str(tid), int(ahead), int(fresh), int(entries))


def batch_seconds(store: PostgresLoginStore, rows: int = BATCH) -> float:
    """One batch of fresh message ids through the real store."""
    batch = [(str(uuid.uuid4()), ROW) for _ in range(rows)]
    started = time.perf_counter()
    store.write(batch)
    return time.perf_counter() - started
