"""How much of a batch the mask worker should take: ``make bench-offload [ARGS=...]``.

For 10,000-record batches, the handler with ``PARALLEL_MASKING=on`` at each worker's share of
``--shares`` (``off``: the worker takes none), each run paired with the serial floor on the
same bodies, turn about (``schedule``); and the CPU time each process spent on a batch, which
says where the time went when the wall clock does not: this process (the writer thread
included), the worker, and Postgres (every process of its server).

Every contender gets bodies of its own. Giving every share of a round the same bodies (as
``--shared-bodies`` does, to show the error) measures all but the first with the worker's cache
already holding the round's values: emptying this process's cache between contenders does not
touch the worker's, its own copy in another process. The first sweep of issue 16 was made that
way.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
DEFAULT_MIN_ROWS = pipeline.OFFLOAD_MIN_ROWS
WARM_UP_SEED = -1  # ``seed`` gives none below 0
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Turn:
    """One contender's turn in a round: its share, its bodies' seed, who runs first."""

    share: str
    seed: int
    floor_first: bool


def schedule(round_: int, shares: list[str], shared_bodies: bool = False) -> list[Turn]:
    """A round: the shares rotated (each leads in turn), the order of the handler and its floor
    run flipped every full rotation, so that each share runs in every position both ways."""
    turn = round_ % len(shares)
    floor_first = (round_ // len(shares)) % 2 == 1
    return [
        Turn(share, seed(round_, 0 if shared_bodies else number), floor_first)
        for number, share in enumerate(shares[turn:] + shares[:turn])
    ]


def seed(round_: int, contender: int) -> int:
    """The bodies' seed: one per contender of each round, never one for two."""
    return 1_000 * round_ + contender


def parse_shares(text: str) -> list[str]:
    """``off`` or a share strictly between 0 and 1, comma-separated, each once."""
    shares = text.split(",")
    for share in shares:
        try:
            valid = share == "off" or 0 < float(share) < 1
        except ValueError:
            valid = False
        if not valid or share != share.strip():
            raise ValueError(f"not a share: {share!r}")
    if len(set(shares)) != len(shares):
        raise ValueError("a share is given twice")
    if len(shares) >= 1_000:  # ``seed`` gives each of a round's contenders bodies of its own
        raise ValueError("too many shares: 999 at most")
    return shares


def set_share(share: str) -> None:
    """The pipeline's offload share for the next batches; ``off``: no offload at all."""
    if share == "off":
        pipeline.OFFLOAD_MIN_ROWS = 10**9
    else:
        pipeline.OFFLOAD_MIN_ROWS = DEFAULT_MIN_ROWS
        pipeline.OFFLOAD_SHARE = float(share)


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command's ``)``: state, ppid, ... (None: gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_ms(pids: Iterable[int]) -> float:
    """User and system CPU time the processes have used so far (a gone one counts 0)."""
    ticks = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks * 1000 / _TICKS


def parent_of(pid: int) -> int:
    """The parent's pid: a backend's is its server's postmaster."""
    fields = _stat(pid)
    if fields is None:
        raise ProcessLookupError(pid)
    return int(fields[1])


def server_cpu_ms(postmaster: int) -> float:
    """CPU time a whole server has used: the postmaster's, its children's now, and that of the
    children that have ended (``cutime``, ``cstime``: the postmaster collected it). A backend
    or an autovacuum worker that starts or ends between two readings is counted either way."""
    fields = _stat(postmaster)
    if fields is None:
        raise ProcessLookupError(postmaster)
    ticks = sum(int(fields[index]) for index in (11, 12, 13, 14))
    live = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    children = [
        pid for pid in live if (stat := _stat(pid)) is not None and int(stat[1]) == postmaster
    ]
    return ticks * 1000 / _TICKS + cpu_ms(children)


def main() -> int:
    """Sweep the shares on a local stack; print one line per contender."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument(
        "--shares", type=parse_shares, default=DEFAULT_SHARES, help=f"default {DEFAULT_SHARES}"
    )
    parser.add_argument(
        "--shared-bodies",
        action="store_true",
        help="every contender of a round on the same bodies: the flawed sweep, to see its error",
    )
    args = parser.parse_args()
    results, replaced = sweep(args.rounds, args.shares, args.shared_bodies)
    print(render(results, args.shares))
    if replaced:
        print(f"the worker was replaced {replaced} times: those runs have no worker CPU")
    return 0


def sweep(
    rounds: int, shares: list[str], shared_bodies: bool
) -> tuple[dict[str, dict[str, list[float]]], int]:
    """The figures of every run by contender, and how often the worker had to be made again."""
    environment = {**QUIET, "PARALLEL_MASKING": "on"}
    with local_stack() as stack, patched_environ({**stack.environment(), **environment}):
        from login_etl.handler import lambda_handler  # noqa: PLC0415 - after the env is set
        from login_etl.runtime import get_runtime  # noqa: PLC0415

        conn = connect(connection_params_from_url(stack.database_url, Settings.from_env()))
        postmaster = parent_of(conn.run("SELECT pg_backend_pid()")[0][0])
        mask = DeterministicMasker(bytes(range(32))).mask
        set_share("0.5")  # a large batch first: the worker is forked before any timed run
        lambda_handler(sqs_event(generate(BATCH, WARM_UP_SEED)), LocalContext())
        worker = get_runtime().key.current().worker
        function_mask = get_runtime().key.current().mask
        replaced = 0

        def measured(run: Callable[[], object]) -> dict[str, float]:
            nonlocal replaced
            pid = None if worker is None else worker.pid
            worker_before = cpu_ms([pid] if pid else [])
            postgres_before = server_cpu_ms(postmaster)
            # This process's clock last before the run and first after it: reading /proc is
            # this process's work, not the run's.
            cpu_before, started = time.process_time(), time.perf_counter()
            run()
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
            figures = {
                "wall": wall * 1000,
                "this process": cpu * 1000,
                "postgres": server_cpu_ms(postmaster) - postgres_before,
            }
            if pid is not None and worker is not None and worker.pid == pid:
                figures["worker"] = cpu_ms([pid]) - worker_before
            else:
                replaced += pid is not None  # the worker's CPU of this run is unknown
            return figures

        results: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        today = date.today()
        for round_ in range(rounds):
            for turn in schedule(round_, shares, shared_bodies):
                bodies = generate(BATCH, turn.seed, malformed_ratio=0.01)
                set_share(turn.share)
                if shared_bodies:
                    _clear_cache(function_mask)  # as the flawed sweep did: this process's only
                handler = partial(lambda_handler, sqs_event(bodies), LocalContext())
                floor = partial(run_floor, conn, bodies, mask, today)
                if turn.floor_first:
                    floor_figures, handler_figures = measured(floor), measured(handler)
                else:
                    handler_figures, floor_figures = measured(handler), measured(floor)
                figures = results[turn.share]
                for name, value in handler_figures.items():
                    figures[name].append(value)
                figures["floor wall"].append(floor_figures["wall"])
                results["floor"]["this process"].append(floor_figures["this process"])
                results["floor"]["postgres"].append(floor_figures["postgres"])
                figures["ratio"].append(floor_figures["wall"] / handler_figures["wall"])
            conn.run("TRUNCATE user_logins, login_etl_processed_messages")
        conn.close()
    return results, replaced


def _clear_cache(mask: Callable[[str], str]) -> None:
    clear = getattr(mask, "cache_clear", None)  # runtime.CurrentKey's lru_cache
    if clear is not None:
        clear()


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.0f}" if values else ""


def render(results: dict[str, dict[str, list[float]]], shares: list[str]) -> str:
    """One line per contender: its ratio to the floor, then the medians of its times (ms)."""
    names = ("wall", "floor wall", "this process", "worker", "postgres")
    lines = [
        f"{'worker share':>12} {'/ floor (IQR)':>18} {'wall':>6} {'floor':>6} {'this':>6}"
        f" {'worker':>7} {'postgres':>8}  (ms a batch: wall times, then CPU times)"
    ]
    for share in [*shares, "floor"]:
        figures = results[share]
        ratio = spread(figures["ratio"]) if figures.get("ratio") else None
        ratio_text = (
            "" if ratio is None else f"{ratio['median']:.2f} ({ratio['q1']:.2f}-{ratio['q3']:.2f})"
        )
        wall, floor, this, worker, postgres = (_median(figures.get(name, [])) for name in names)
        lines.append(
            f"{share:>12} {ratio_text:>18} {wall:>6} {floor:>6} {this:>6} {worker:>7} {postgres:>8}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
