"""The CPU meters of ``make bench``: schedstat on this process, stat as a fallback, the tree."""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks.cpu import TreeMeter, children, parent_pid, process_cpu_ns


def burn_cpu(seconds: float) -> None:
    """Spin until this thread has spent ``seconds`` on CPU (not a wall-clock wait)."""
    started = time.thread_time()
    while time.thread_time() - started < seconds:
        sum(range(1_000))


def test_schedstat_counts_the_cpu_this_process_spends() -> None:
    before, thread_before = process_cpu_ns(os.getpid()), time.thread_time_ns()
    burn_cpu(0.05)
    after, thread_after = process_cpu_ns(os.getpid()), time.thread_time_ns()
    assert before is not None
    assert after is not None
    # The process's count includes this thread's, whatever else its threads did.
    assert after - before >= (thread_after - thread_before) * 0.95


def test_a_process_that_is_gone_reads_as_none() -> None:
    assert process_cpu_ns(2**22 + 12_345) is None


def fake_proc(tmp_path: Path, processes: dict[int, tuple[int, int, int]]) -> Path:
    """A /proc with ``stat`` files only (no schedstat): pid -> (ppid, utime, stime)."""
    for pid, (ppid, utime, stime) in processes.items():
        (tmp_path / str(pid)).mkdir()
        between = " ".join(["0"] * 9)  # pgrp .. cmajflt
        (tmp_path / str(pid) / "stat").write_text(
            f"{pid} (postgres: a (b) c) S {ppid} {between} {utime} {stime} 0 0\n"
        )
    (tmp_path / "self").mkdir()
    return tmp_path


def test_without_schedstat_utime_and_stime_ticks_are_read(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {10: (1, 3, 4)})
    assert process_cpu_ns(10, proc) == 7 * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert parent_pid(10, proc) == 1


def test_the_tree_holds_every_descendant_and_no_one_else(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        {10: (1, 0, 0), 11: (10, 0, 0), 12: (10, 0, 0), 13: (12, 0, 0), 20: (1, 0, 0)},
    )
    assert children(10, proc) == {11, 12, 13}
    meter = TreeMeter(10, proc)
    meter.rescan()
    assert meter.pids == {10, 11, 12, 13}


def test_time_spent_counts_only_processes_read_both_times() -> None:
    before = {1: 1_000_000_000, 2: 5_000_000_000}
    after = {1: 1_500_000_000, 3: 9_000_000_000}  # 2 exited, 3 started in between
    assert TreeMeter.spent_s(before, after) == 0.5


def test_the_parent_of_this_process() -> None:
    assert parent_pid(os.getpid()) == os.getppid()
