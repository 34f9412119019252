"""``make bench-ledger``: its bookkeeping, and the steady state it measures in (real Postgres)."""

from __future__ import annotations

import pytest

from benchmarks.ledger import design_for, parse_args, per_round_ratios
from benchmarks.ledger_prune import LIMIT, PAGES, prune_beside, run_limit, run_pages, step_seconds
from benchmarks.ledger_state import (
    LedgerClock,
    LedgerTooSmallError,
    admin_connection,
    batch_seconds,
    fill,
    layout,
    vacuum,
)
from login_etl.adapters.postgres.connection import ConnectionParams
from login_etl.adapters.postgres.store import PostgresLoginStore

HOUR = 3600.0


def test_two_designs_take_turns_a_b_b_a() -> None:
    order = [design_for(m, [PAGES, LIMIT]) for m in range(8)]
    assert order == [PAGES, LIMIT, LIMIT, PAGES, PAGES, LIMIT, LIMIT, PAGES]
    assert {design_for(m, [LIMIT]) for m in range(5)} == {LIMIT}


def test_a_step_lasts_until_the_next_one_begins_and_the_last_until_the_run_ends() -> None:
    assert step_seconds([1.0, 1.5, 4.0], 4.25) == (0.5, 2.5, 0.25)
    assert step_seconds([], 2.0) == ()


def test_the_clock_moves_on_by_as_many_entries_as_were_written() -> None:
    clock = LedgerClock(size=1_000, window_s=1_000 * HOUR)
    clock.written_now(30)
    clock.written_now(20)
    assert clock.retention_for_prune() == 950 * HOUR
    assert clock.retention_for_prune() == 950 * HOUR  # nothing written since
    clock.written_now(500)
    with pytest.raises(LedgerTooSmallError):
        clock.retention_for_prune()  # past half the window: fresh entries would look old


def test_sizes_compare_round_by_round() -> None:
    rounds = [{0: 1.0, 5: 2.0}, {0: 3.0, 5: 3.0}]
    assert per_round_ratios(rounds, 5, 0) == [2.0, 1.0]


def test_the_arguments_name_sizes_and_designs() -> None:
    args = parse_args(["--sizes", "0,10000000,50000000", "--designs", "pages"])
    assert (args.sizes, args.designs) == ([0, 10_000_000, 50_000_000], [PAGES])
    with pytest.raises(SystemExit):
        parse_args(["--designs", "pages,index"])


def test_after_a_cycle_new_entries_are_ahead_of_old_ones_and_both_designs_prune_the_window(
    ledger_database: ConnectionParams,
) -> None:
    """The benchmark's premise: new entries fill the space a prune freed at the heap's head,
    and each cycle's prune, either design, deletes exactly what fell out of the window."""
    size = 20_000  # one entry every 180 s of the window
    clock = LedgerClock(size, window_s=size * 180.0)
    filled_at = fill(ledger_database, size, clock.window_s)
    store = PostgresLoginStore(ledger_database)
    admin = admin_connection(ledger_database)
    try:
        deleted = []
        for runner in (run_pages, run_pages, run_limit):
            batch_seconds(store, 2_000)
            clock.written_now(2_000)
            deleted.append(runner(ledger_database, clock.retention_for_prune(), 500).deleted)
            vacuum(admin)
        found = layout(admin, filled_at)
    finally:
        admin.close()
        store.close()

    assert deleted == [2_000, 2_000, 2_000]
    assert (found.entries, found.fresh) == (size, 6_000)
    # The first batch found no free space (appended); the next ones went where the
    # previous prunes had freed the oldest entries: ahead of every old entry left.
    assert found.fresh_ahead == 4_000


def test_a_prune_runs_in_a_process_of_its_own_while_the_writer_goes_on(
    ledger_database: ConnectionParams,
) -> None:
    clock = LedgerClock(10_000, window_s=10_000 * 180.0)
    fill(ledger_database, 10_000, clock.window_s)
    clock.written_now(1_000)
    writes: list[int] = []

    def writer() -> float:
        writes.append(1)
        return 0.25

    run, batches = prune_beside(PAGES, ledger_database, clock.retention_for_prune(), 500, writer)

    assert (run.design, run.deleted) == (PAGES, 1_000)
    assert 0 < sum(run.steps_s) <= run.total_s
    assert batches == [0.25] * len(writes)
    assert writes  # the child takes a connect at least: the writer had its turn
