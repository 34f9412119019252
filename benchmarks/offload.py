"""How much of a batch the mask worker should take: ``make bench-offload [ARGS=...]``.

For 10,000-record batches, the handler with ``PARALLEL_MASKING=on`` at each worker's share of
``--shares`` (``off``: the worker takes none), each against the serial floor on the same
bodies, turn about; and the CPU time each process spent on a batch, which says where the time
went when the wall clock does not: this process (the writer thread included), the worker,
and Postgres (every process of its server).

Every contender gets bodies of its own, and its floor run the same ones (``seed``). Giving
every share of a round the same bodies measured all but the first with the worker's cache
already holding the round's values (its own copy, which emptying this process's cache does not
touch): the first sweep of issue 16, made that way, gave 1.06-1.14 of the floor for what
measures 0.89-0.91 here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date
from functools import partial
from pathlib import Path

from benchmarks.benchmark import QUIET, spread
from benchmarks.floor import run_floor
from benchmarks.probe import sqs_event
from login_etl import pipeline
from login_etl.adapters.postgres_connection import connect
from login_etl.config import Settings, connection_params_from_url
from login_etl.domain.masking import DeterministicMasker
from login_etl_cli.sample_data import generate
from login_etl_local.event_source_mapping import LocalContext
from login_etl_local.stack import local_stack
from login_etl_local.stack_record import patched_environ

BATCH = 10_000
DEFAULT_SHARES = "off,0.3,0.4,0.5,0.6,0.65,0.75"
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ms(pids: Iterable[int]) -> float:
    """User and system CPU time the processes have used so far (a gone one counts 0)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks * 1000 / _TICKS


def parent_of(pid: int) -> int:
    """The parent's pid: a backend's is its server's postmaster."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def server_processes(postmaster: int) -> list[int]:
    """Every process of a Postgres server now: its postmaster and the postmaster's children
    (the backends come and go with their connections)."""
    children = [postmaster]
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == postmaster:
                children.append(int(name))
    return children


def parse_shares(text: str) -> list[str]:
    """``off`` or a share strictly between 0 and 1, comma-separated; ValueError otherwise."""
    shares = text.split(",")
    for share in shares:
        try:
            valid = share == "off" or 0 < float(share) < 1
        except ValueError:
            valid = False
        if not valid:
            raise ValueError(f"not a share: {share!r}")
    if len(shares) >= 1_000:  # ``seed`` gives each of a round's contenders bodies of its own
        raise ValueError("too many shares: 999 at most")
    return shares


def seed(round_: int, contender: int) -> int:
    """The bodies' seed: one per contender of each round, never one for two."""
    return 1_000 * round_ + contender


def set_share(share: str) -> None:
    """The pipeline's offload share for the next batches; ``off``: no offload at all."""
    vars(pipeline)["OFFLOAD_MIN_ROWS"] = 10**9 if share == "off" else 1_000
    if share != "off":
        vars(pipeline)["OFFLOAD_SHARE"] = float(share)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--shares", type=parse_shares, default=DEFAULT_SHARES, help=f"default {DEFAULT_SHARES}"
    )
    args = parser.parse_args()
    shares: list[str] = args.shares
    environment = {**QUIET, "PARALLEL_MASKING": "on"}
    with local_stack() as stack, patched_environ({**stack.environment(), **environment}):
        from login_etl.handler import lambda_handler  # noqa: PLC0415 - after the env is set
        from login_etl.runtime import get_runtime  # noqa: PLC0415

        conn = connect(connection_params_from_url(stack.database_url, Settings.from_env()))
        postmaster = parent_of(conn.run("SELECT pg_backend_pid()")[0][0])
        mask = DeterministicMasker(bytes(range(32))).mask
        lambda_handler(sqs_event(generate(10, 1)), LocalContext())

        def worker_pids() -> list[int]:
            worker = get_runtime().key.current().worker
            pid = None if worker is None else worker.pid
            return [] if pid is None else [pid]

        def measured(run: Callable[[], object]) -> dict[str, float]:
            workers, postgres = worker_pids(), server_processes(postmaster)
            before = (time.process_time(), cpu_ms(workers), cpu_ms(postgres))
            started = time.perf_counter()
            run()
            wall = time.perf_counter() - started
            return {
                "wall": wall * 1000,
                "this process": (time.process_time() - before[0]) * 1000,
                "worker": cpu_ms(workers) - before[1] if workers == worker_pids() else 0.0,
                "postgres": cpu_ms(postgres) - before[2],
            }

        results: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        today = date.today()
        for round_ in range(args.rounds):
            turn = round_ % len(shares)
            for number, share in enumerate(shares[turn:] + shares[:turn]):
                bodies = generate(BATCH, seed(round_, number), malformed_ratio=0.01)
                set_share(share)
                event = sqs_event(bodies)
                order = ("floor", "handler") if round_ % 2 else ("handler", "floor")
                took = {}
                for who in order:
                    if who == "floor":
                        took[who] = measured(partial(run_floor, conn, bodies, mask, today))
                    else:
                        took[who] = measured(partial(lambda_handler, event, LocalContext()))
                for name, value in took["handler"].items():
                    results[share][name].append(value)
                for name, value in took["floor"].items():
                    results["floor"][name].append(value)
                results[share]["ratio"].append(took["floor"]["wall"] / took["handler"]["wall"])
            conn.run("TRUNCATE user_logins, login_etl_processed_messages")
        conn.close()
    print(render(results, shares))
    return 0


def render(results: dict[str, dict[str, list[float]]], shares: list[str]) -> str:
    """One line per contender: its ratio to the floor, then the medians of its times (ms)."""
    lines = [
        f"{'worker share':>12} {'/ floor (IQR)':>18} {'wall':>6} {'this':>6} {'worker':>7}"
        f" {'postgres':>8}  (ms a batch; CPU but wall)"
    ]
    for share in ["floor", *shares]:
        figures = results[share]
        ratio = spread(figures["ratio"]) if figures.get("ratio") else None
        ratio_text = (
            "" if ratio is None else f"{ratio['median']:.2f} ({ratio['q1']:.2f}-{ratio['q3']:.2f})"
        )
        medians = [statistics.median(figures[name]) for name in ("wall", "this process")]
        medians += [statistics.median(figures[name]) for name in ("worker", "postgres")]
        lines.append(
            f"{share:>12} {ratio_text:>18} {medians[0]:>6.0f} {medians[1]:>6.0f}"
            f" {medians[2]:>7.0f} {medians[3]:>8.0f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
