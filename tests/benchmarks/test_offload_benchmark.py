"""``make bench-offload``'s bookkeeping: fresh bodies per contender, CPU accounting, shares."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmarks import offload
from login_etl import pipeline


def test_no_two_contenders_of_a_run_share_their_bodies() -> None:
    """Shared bodies let the worker's cache answer for the later contenders of a round."""
    shares = offload.parse_shares(offload.DEFAULT_SHARES)
    seeds = [offload.seed(r, n) for r in range(300) for n in range(len(shares))]
    assert len(set(seeds)) == len(seeds)
    widest = offload.parse_shares(",".join(["off"] * 999))
    assert offload.seed(0, len(widest) - 1) != offload.seed(1, 0)


@pytest.mark.parametrize("text", ["0", "1", "1.5", "-0.2", "half", "", "0.5,", "nan", "inf"])
def test_a_share_outside_zero_to_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a share"):
        offload.parse_shares(text)


def test_more_contenders_than_the_seeds_keep_apart_are_refused() -> None:
    with pytest.raises(ValueError, match="too many shares"):
        offload.parse_shares(",".join(["off"] * 1_000))


def test_set_share_sets_the_pipelines_share_or_turns_the_offload_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pipeline, "OFFLOAD_SHARE", pipeline.OFFLOAD_SHARE)
    monkeypatch.setattr(pipeline, "OFFLOAD_MIN_ROWS", pipeline.OFFLOAD_MIN_ROWS)
    offload.set_share("0.3")
    assert (pipeline.OFFLOAD_SHARE, pipeline.OFFLOAD_MIN_ROWS) == (0.3, 1_000)
    offload.set_share("off")
    assert pipeline.OFFLOAD_MIN_ROWS > 10_000  # no batch reaches it


def test_cpu_time_is_counted_for_running_processes_and_zero_for_gone_ones() -> None:
    before = offload.cpu_ms([os.getpid()])
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert offload.cpu_ms([os.getpid()]) >= before + 40  # clock ticks: 10 ms at worst
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert offload.cpu_ms([int(gone.stdout)]) == 0.0


def test_a_servers_processes_are_its_postmaster_and_its_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert offload.parent_of(child.pid) == os.getpid()
        found = offload.server_processes(os.getpid())
        assert found[0] == os.getpid()
        assert child.pid in found
    finally:
        child.kill()
        child.wait()


def test_the_report_has_a_line_per_contender_with_its_ratio() -> None:
    figures = {"wall": [200.0], "this process": [150.0], "worker": [0.0], "postgres": [40.0]}
    results = {
        "floor": figures,
        "off": {**figures, "wall": [250.0], "ratio": [0.8]},
        "0.5": {**figures, "wall": [210.0], "ratio": [0.95]},
    }
    lines = offload.render(results, ["off", "0.5"]).splitlines()
    assert len(lines) == 4
    assert lines[2].split()[:2] == ["off", "0.80"]
    assert lines[3].split()[:3] == ["0.5", "0.95", "(0.95-0.95)"]
