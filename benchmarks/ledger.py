"""``make bench-ledger``: the ledger's prune in a steady state, and what it costs the writers.

One throwaway Postgres, one database per ledger size (default 0, 1 M and 5 M entries; the
issue's figures: ``ARGS="--sizes 0,10000000,50000000"``). Each ledger is filled over the
retention window, then goes through cycles (``ledger_state``): the writer adds fresh entries
through the real store, time passes, a prune run deletes what fell out of the window while the
writer goes on beside it, and ``VACUUM`` frees the space for the next cycle's entries. The
first cycles (``--warmup``, the function's prune) bring new entries to the heap's head, ahead of
the old ones; in the measured cycles the designs (``ledger_prune``: the function's page walk,
the previous ``LIMIT`` scan) take turns, A B B A A B ..., and the writer's rounds without a
prune go round the sizes, so that the machine's load moves all of them alike.

Reported per ledger size: each design's step times (median and max of a run), a run's total
and what it deleted; the writer's 10,000-record batches without a prune and beside each
design's; the writer against the ledger's size (ratio to the first size, per round); where the
entries written during the run are in the heap; the load average and the whole run's time.
The ledger of size 0 takes only the writer's rounds (nothing to prune).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pg8000.native

from benchmarks.ledger_prune import DESIGNS, PAGES, PruneRun, prune_beside
from benchmarks.ledger_state import (
    BATCH,
    LedgerClock,
    LedgerSizes,
    admin_connection,
    batch_seconds,
    fill,
    layout,
    sizes,
    vacuum,
)
from login_etl.adapters.postgres.connection import ConnectionParams
from login_etl.adapters.postgres.store import PostgresLoginStore
from login_etl.config import Settings, connection_params_from_url
from login_etl.ledger_pruning import ledger_window
from login_etl_local.postgres_server import PostgresServer

MB = 1024 * 1024


@dataclass(slots=True)
class Ledger:
    """One ledger size's database, its writer, its clock."""

    size: int
    params: ConnectionParams
    writer: PostgresLoginStore
    admin: pg8000.native.Connection
    clock: LedgerClock
    filled_at: dt.datetime
    fill_s: float


@dataclass(frozen=True, slots=True)
class Cycle:
    """One prune run with the writer beside it, and the ledger after its VACUUM."""

    size: int
    number: int
    measured: bool
    run: PruneRun
    beside_s: tuple[float, ...]
    vacuum_s: float
    before: LedgerSizes
    after: LedgerSizes


def design_for(measured: int, designs: Sequence[str]) -> str:
    """The design of the ``measured``-th measured cycle: A B B A A B B A ... for two."""
    if len(designs) == 1:
        return designs[0]
    return designs[(measured % 2) ^ (measured // 2 % 2)]


def per_round_ratios(rounds: Sequence[dict[int, float]], size: int, base: int) -> list[float]:
    """Each round's batch time at ``size`` over the same round's at ``base``."""
    return [r[size] / r[base] for r in rounds]


def msg_per_s(seconds: Sequence[float]) -> float:
    """A writer's throughput from its batches' times (median)."""
    return BATCH / statistics.median(seconds)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,1000000,5000000", help="ledger sizes, commas")
    parser.add_argument("--warmup", type=int, default=2, help="cycles before measuring (2)")
    parser.add_argument("--cycles", type=int, default=4, help="measured cycles (4)")
    parser.add_argument("--rounds", type=int, default=3, help="quiet batches a cycle (3)")
    parser.add_argument(
        "--designs", default="pages,limit", help="pages (the function's), limit (previous)"
    )
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.designs = args.designs.split(",")
    unknown = set(args.designs) - set(DESIGNS)
    if unknown:
        parser.error(f"unknown designs {sorted(unknown)}; known: {sorted(DESIGNS)}")
    return args


def main() -> None:
    """Measure and print."""
    args = parse_args()
    started, load_at_start = time.perf_counter(), os.getloadavg()
    print(f"load average at the start: {fmt_load(load_at_start)}")
    server = PostgresServer.start()
    try:
        settings = Settings.from_env({"DATABASE_URL": server.url, "DATA_KEY_CIPHERTEXT": "-"})
        base = connection_params_from_url(server.url, settings)
        window = ledger_window(
            settings.queue_retention_s,
            settings.dlq_retention_s,
            settings.ledger_retention_margin_s,
            None,
        ).seconds
        ledgers = open_ledgers(base, args.sizes, window)
        rounds, cycles = run_cycles(ledgers, args, settings.ledger_prune_batch_rows)
        report(ledgers, rounds, cycles, settings.ledger_prune_batch_rows)
        for ledger in ledgers.values():
            ledger.writer.close()
            ledger.admin.close()
    finally:
        server.stop()
    print(
        f"\nwhole run {(time.perf_counter() - started) / 60:.1f} min; load average at the"
        f" start {fmt_load(load_at_start)}, at the end {fmt_load(os.getloadavg())}"
    )


def open_ledgers(base: ConnectionParams, sizes_: list[int], window_s: int) -> dict[int, Ledger]:
    """A database per size, filled."""
    admin = admin_connection(base)
    ledgers = {}
    try:
        for size in sizes_:
            admin.run(f"CREATE DATABASE ledger_{size}")
            params = replace(base, database=f"ledger_{size}")
            started = time.perf_counter()
            filled_at = fill(params, size, window_s)
            fill_s = time.perf_counter() - started
            ledger_admin = admin_connection(params)
            after = sizes(ledger_admin)
            print(
                f"ledger of {size:,} entries filled in {fill_s:.0f} s: heap"
                f" {after.heap_bytes / MB:,.0f} MB ({after.pages:,} pages),"
                f" index {after.index_bytes / MB:,.0f} MB",
                flush=True,
            )
            ledgers[size] = Ledger(
                size,
                params,
                PostgresLoginStore(params),
                ledger_admin,
                LedgerClock(size, window_s),
                filled_at,
                fill_s,
            )
    finally:
        admin.close()
    return ledgers


def run_cycles(
    ledgers: dict[int, Ledger], args: argparse.Namespace, batch_rows: int
) -> tuple[list[dict[int, float]], list[Cycle]]:
    """Warm-up and measured cycles; the quiet rounds (measured cycles only) and every run."""
    rounds: list[dict[int, float]] = []
    cycles: list[Cycle] = []
    for number in range(args.warmup + args.cycles):
        measured = number >= args.warmup
        design = design_for(number - args.warmup, args.designs) if measured else PAGES
        for _ in range(args.rounds):
            this_round = {}
            for ledger in ledgers.values():
                this_round[ledger.size] = batch_seconds(ledger.writer)
                ledger.clock.written_now(BATCH)
            if measured:
                rounds.append(this_round)
        for ledger in ledgers.values():
            if ledger.size:
                cycle = prune_cycle(ledger, number, design, batch_rows, measured)
                cycles.append(cycle)
                print(describe_cycle(cycle), flush=True)
    return rounds, cycles


def prune_cycle(ledger: Ledger, number: int, design: str, batch_rows: int, measured: bool) -> Cycle:
    """Time passes, a prune run with the writer beside it, VACUUM."""
    retention_s = ledger.clock.retention_for_prune()
    before = sizes(ledger.admin)
    run, beside = prune_beside(
        design, ledger.params, retention_s, batch_rows, lambda: batch_seconds(ledger.writer)
    )
    ledger.clock.written_now(BATCH * len(beside))
    vacuum_s = vacuum(ledger.admin)
    after = sizes(ledger.admin)
    return Cycle(ledger.size, number, measured, run, tuple(beside), vacuum_s, before, after)


def describe_cycle(cycle: Cycle) -> str:
    run = cycle.run
    kind = "" if cycle.measured else " (warm-up)"
    return (
        f"cycle {cycle.number}{kind}, {cycle.size:,} entries, {run.design}: deleted"
        f" {run.deleted:,} in {run.total_s:.1f} s, {len(run.steps_s):,} steps (median"
        f" {ms(statistics.median(run.steps_s))}, max {ms(max(run.steps_s))} ms);"
        f" {len(cycle.beside_s)} batches beside it; VACUUM {cycle.vacuum_s:.1f} s; then"
        f" {cycle.after.pages:,} pages, about {cycle.after.entries:,} entries (VACUUM's count)"
    )


def report(
    ledgers: dict[int, Ledger],
    rounds: list[dict[int, float]],
    cycles: list[Cycle],
    batch_rows: int,
) -> None:
    measured = [c for c in cycles if c.measured]
    print(f"\nPrune runs, measured cycles only ({batch_rows:,} entries a step):")
    report_prunes(measured)
    print("\n10,000-record batches through the store, msg/s (median, batches):")
    report_writers(rounds, measured)
    print("\nThe writer against the ledger's size (rounds without a prune, interleaved):")
    report_sizes(rounds)
    print("\nWhere the entries written during the run are (two scans of each ledger):")
    for ledger in ledgers.values():
        if ledger.size:
            found = layout(ledger.admin, ledger.filled_at)
            share = found.fresh_ahead / max(found.fresh, 1)
            print(
                f"{ledger.size:>12,}: {found.entries:,} entries, {found.fresh:,} written"
                f" during the run, {share:.0%} of them ahead of the oldest entry of the fill"
                f" (at {found.first_old_tid}); filled in {ledger.fill_s:.0f} s"
            )


def report_prunes(measured: list[Cycle]) -> None:
    print(
        f"{'entries':>12} {'design':>6} {'runs':>4} {'deleted/run':>11} {'steps/run':>9}"
        f" {'step med ms':>11} {'step max ms':>11} {'run s':>7} {'runs s min-max':>15}"
        f" {'pages/s':>8} {'vacuum s':>8}"
    )
    for size in sorted({c.size for c in measured}):
        totals = {}
        for design in DESIGNS:
            runs = [c for c in measured if c.size == size and c.run.design == design]
            if not runs:
                continue
            total = [c.run.total_s for c in runs]
            totals[design] = statistics.median(total)
            print(
                f"{size:>12,} {design:>6} {len(runs):>4}"
                f" {statistics.median(c.run.deleted for c in runs):>11,.0f}"
                f" {statistics.median(len(c.run.steps_s) for c in runs):>9,.0f}"
                f" {ms(statistics.median(statistics.median(c.run.steps_s) for c in runs)):>11}"
                f" {ms(statistics.median(max(c.run.steps_s) for c in runs)):>11}"
                f" {statistics.median(total):>7.1f} {min(total):>7.1f}-{max(total):<7.1f}"
                f" {statistics.median(c.before.pages / c.run.total_s for c in runs):>8,.0f}"
                f" {statistics.median(c.vacuum_s for c in runs):>8.1f}"
            )
        if len(totals) == len(DESIGNS):
            worst = {
                d: max(max(c.run.steps_s) for c in measured if c.size == size and c.run.design == d)
                for d in DESIGNS
            }
            print(
                f"{'':>12} limit / pages: run {totals['limit'] / totals['pages']:.2f}x,"
                f" longest step {worst['limit'] / worst['pages']:.1f}x"
                f" ({ms(worst['limit'])} ms against {ms(worst['pages'])} ms)"
            )


def report_writers(rounds: list[dict[int, float]], measured: list[Cycle]) -> None:
    header = f"{'entries':>12} {'no prune':>15}"
    for design in DESIGNS:
        header += f" {'beside ' + design:>17} {'x':>5}"
    print(header)
    for size in sorted({c.size for c in measured}):
        quiet = [r[size] for r in rounds]
        line = f"{size:>12,} {msg_per_s(quiet):>9,.0f} ({len(quiet):>3})"
        for design in DESIGNS:
            beside = [
                s for c in measured if c.size == size and c.run.design == design for s in c.beside_s
            ]
            if beside:
                ratio = statistics.median(beside) / statistics.median(quiet)
                line += f" {msg_per_s(beside):>11,.0f} ({len(beside):>3}) {ratio:>5.2f}"
        print(line)


def report_sizes(rounds: list[dict[int, float]]) -> None:
    if not rounds:
        return
    base = min(rounds[0])
    print(f"{'entries':>12} {'msg/s':>8} {'median s':>9} {'min-max s':>13} {'x per round':>11}")
    for size in sorted(rounds[0]):
        times = [r[size] for r in rounds]
        ratio = statistics.median(per_round_ratios(rounds, size, base))
        spread = f"{min(times):.3f}-{max(times):.3f}"
        print(
            f"{size:>12,} {msg_per_s(times):>8,.0f} {statistics.median(times):>9.3f}"
            f" {spread:>13} {ratio:>11.2f}"
        )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def fmt_load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


if __name__ == "__main__":
    main()
