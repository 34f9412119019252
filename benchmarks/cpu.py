"""CPU meters of ``make bench``: the calling thread's, and a whole process tree's (Postgres).

Lambda bills duration, and at up to one vCPU a CPU-bound function's duration is its CPU time:
CPU time is what the cost model (``cost.py``) is built on, measured per call.

* The function's: ``time.thread_time()`` of the thread that calls it. The function is
  single-threaded, and the local stack's servers (moto, Postgres) are processes of their own,
  so nothing else of this process is counted; ``ThreadCheck`` measures the rest of the process
  beside it, to show that it stays near zero.
* Postgres's: the CPU time of the postmaster and all its children (backends, checkpointer,
  walwriter, autovacuum workers...), from ``/proc/<pid>/task/<tid>/schedstat`` (nanoseconds on
  CPU, the scheduler's own count) or, where the kernel has no schedstat, ``/proc/<pid>/stat``'s
  utime + stime (clock ticks, 10 ms here). Children come and go (autovacuum workers), so
  ``rescan`` finds them again, outside the timed part.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def process_cpu_ns(pid: int | str, proc: Path = PROC) -> int | None:
    """Nanoseconds a process has spent on CPU, all its threads; None once it has exited."""
    if not (proc / "self" / "schedstat").exists():
        return _stat_cpu_ns(pid, proc)  # a kernel built without schedstats
    try:
        tasks = list((proc / str(pid) / "task").iterdir())
    except OSError:
        return None
    total = 0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended while we read: its time is lost either way
    return total


def _stat_cpu_ns(pid: int | str, proc: Path) -> int | None:
    """utime + stime from ``/proc/<pid>/stat`` (whole process, clock ticks), in ns."""
    try:
        fields = _stat_fields(proc / str(pid) / "stat")
    except (OSError, ValueError):
        return None
    return (int(fields[11]) + int(fields[12])) * _TICK_NS


def _stat_fields(path: Path) -> list[str]:
    """The fields of a ``stat`` file after the command name (which may hold spaces): state
    is [0], ppid [1], utime [11], stime [12]."""
    text = path.read_text()
    return text[text.rindex(")") + 2 :].split()


def parent_pid(pid: int, proc: Path = PROC) -> int:
    """The parent of a process (e.g. the postmaster of a backend from ``pg_backend_pid()``)."""
    return int(_stat_fields(proc / str(pid) / "stat")[1])


def children(root: int, proc: Path = PROC) -> set[int]:
    """Every descendant of ``root`` now (a scan of /proc: this kernel has no ``children``)."""
    parents: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = int(_stat_fields(entry / "stat")[1])
        except (OSError, ValueError, IndexError):
            continue  # exited while we looked
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


@dataclass
class TreeMeter:
    """CPU time of a process and its descendants, read before and after a call."""

    root: int
    proc: Path = PROC
    pids: set[int] = field(default_factory=set)

    def rescan(self) -> None:
        """Find the tree's processes again (outside the timed part: it reads all of /proc)."""
        self.pids = {self.root} | children(self.root, self.proc)

    def read(self) -> dict[int, int]:
        """ns on CPU of each process of the tree, as last scanned (the exited ones left out)."""
        if not self.pids:
            self.rescan()
        readings = {pid: process_cpu_ns(pid, self.proc) for pid in self.pids}
        return {pid: ns for pid, ns in readings.items() if ns is not None}

    @staticmethod
    def spent_s(before: Mapping[int, int], after: Mapping[int, int]) -> float:
        """Seconds on CPU between two readings, over the processes present in both."""
        return sum(after[pid] - ns for pid, ns in before.items() if pid in after) / 1e9


@dataclass(frozen=True, slots=True)
class CallCost:
    """What one call took: CPU of the calling thread, of Postgres, of the rest of this
    process (other threads: expected ~0), and wall-clock time, in seconds."""

    function_cpu_s: float
    postgres_cpu_s: float
    other_threads_cpu_s: float
    wall_s: float


class CallMeter:
    """Times calls on all clocks at once; the Postgres readings sit outside the thread's."""

    def __init__(self, postgres: TreeMeter) -> None:
        self.postgres = postgres

    def __enter__(self) -> CallMeter:
        self._pg = self.postgres.read()
        self._process = time.process_time()
        self._thread = time.thread_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        wall = time.perf_counter()
        thread = time.thread_time()
        process = time.process_time()
        pg = self.postgres.read()
        function = thread - self._thread
        self.cost = CallCost(
            function_cpu_s=function,
            postgres_cpu_s=TreeMeter.spent_s(self._pg, pg),
            other_threads_cpu_s=max(0.0, (process - self._process) - function),
            wall_s=wall - self._wall,
        )
