"""``make bench-offload``'s bookkeeping: fresh bodies per contender, a balanced schedule, CPU
accounting that follows processes as they come and go, and the shares it accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter

import pytest

from benchmarks import offload
from login_etl import pipeline
from login_etl_cli.sample_data import generate

# A child of the "server" burns this much CPU, then ends (or sleeps).
BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"


@pytest.mark.parametrize("count", [1, 4, 7])
def test_no_two_contenders_of_a_run_share_their_bodies(count: int) -> None:
    """Shared bodies let the worker's cache answer for the later contenders of a round."""
    shares = [f"0.{n + 1}" for n in range(count)]
    seeds = [turn.seed for r in range(40) for turn in offload.schedule(r, shares)]
    assert len(set(seeds)) == len(seeds)


def test_the_flawed_sweep_gives_a_round_one_seed_for_all() -> None:
    turns = offload.schedule(3, ["off", "0.5", "0.65"], shared_bodies=True)
    assert len({turn.seed for turn in turns}) == 1


@pytest.mark.parametrize("count", [2, 4, 7])
def test_every_share_runs_in_every_position_both_ways(count: int) -> None:
    """The tables grow until the round's end: a share always first, or always ahead of its
    floor, would be measured in other conditions than the others."""
    shares = [f"0.{n + 1}" for n in range(count)]
    seen = Counter(
        (turn.share, position, turn.floor_first)
        for r in range(2 * count)
        for position, turn in enumerate(offload.schedule(r, shares))
    )
    assert set(seen.values()) == {1}
    assert len(seen) == count * count * 2


def test_bodies_of_two_seeds_share_no_ip_or_device() -> None:
    """What keeps the caches cold: each contender's values are new to both processes."""

    def values(seed: int) -> set[str]:
        logins = [json.loads(body) for body in generate(2_000, seed, malformed_ratio=0.0)]
        return {login["ip"] for login in logins} | {login["device_id"] for login in logins}

    first, second, next_round = (values(offload.seed(r, n)) for r, n in [(0, 0), (0, 1), (1, 0)])
    assert first.isdisjoint(second)
    assert first.isdisjoint(next_round)


@pytest.mark.parametrize(
    "text", ["0", "1", "1.5", "-0.2", "half", "", "0.5,", "nan", "inf", " 0.5", "0.5,0.5"]
)
def test_a_share_outside_zero_to_one_or_given_twice_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a share|given twice"):
        offload.parse_shares(text)


def test_more_contenders_than_the_seeds_keep_apart_are_refused() -> None:
    many = ",".join(f"0.{n:04d}" for n in range(1, 1_001))
    with pytest.raises(ValueError, match="too many shares"):
        offload.parse_shares(many)
    assert len(offload.parse_shares(",".join(f"0.{n:04d}" for n in range(1, 1_000)))) == 999


def test_set_share_turns_the_offload_off_and_back_on(monkeypatch: pytest.MonkeyPatch) -> None:
    default = pipeline.OFFLOAD_MIN_ROWS
    monkeypatch.setattr(pipeline, "OFFLOAD_SHARE", pipeline.OFFLOAD_SHARE)
    monkeypatch.setattr(pipeline, "OFFLOAD_MIN_ROWS", default)
    offload.set_share("off")
    assert pipeline.OFFLOAD_MIN_ROWS > 10_000  # no batch reaches it
    offload.set_share("0.3")
    assert pipeline.OFFLOAD_SHARE == 0.3
    assert default == pipeline.OFFLOAD_MIN_ROWS


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


def test_a_servers_cpu_counts_children_that_ended_and_children_still_running() -> None:
    """A backend or an autovacuum worker may start or end during a batch."""
    server_script = (
        "import subprocess, sys\n"
        "sys.stdin.readline()\n"
        f"subprocess.run([sys.executable, '-c', {BURN!r}], check=True)\n"
        "print('ended', flush=True)\n"
        "sys.stdin.readline()\n"
        f"child = subprocess.Popen([sys.executable, '-c', {BURN + 'time.sleep(60)'!r}])\n"
        "print(child.pid, flush=True)\n"
        "sys.stdin.readline()\n"
        "child.kill()\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", server_script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        assert offload.parent_of(server.pid) == os.getpid()
        before = offload.server_cpu_ms(server.pid)
        server.stdin.write("go\n")
        server.stdin.flush()
        assert server.stdout.readline() == "ended\n"
        ended = offload.server_cpu_ms(server.pid)
        assert ended - before >= 290  # the child's burn, collected by its parent

        server.stdin.write("go\n")
        server.stdin.flush()
        child = int(server.stdout.readline())
        assert offload.parent_of(child) == server.pid
        deadline = time.monotonic() + 60
        while offload.cpu_ms([child]) < 300:  # until the child has burnt its CPU
            assert time.monotonic() < deadline, "the child never burnt its CPU"
            time.sleep(0.05)
        assert offload.server_cpu_ms(server.pid) - ended >= 290  # a live child's own time
        server.stdin.write("end\n")
        server.stdin.flush()
    finally:
        server.kill()
        server.wait()


def test_the_report_has_a_line_per_contender_with_its_ratio_and_its_own_floor() -> None:
    run = {"wall": [250.0], "floor wall": [200.0], "this process": [150.0], "postgres": [40.0]}
    results = {
        "off": {**run, "ratio": [0.8]},
        "0.5": {**run, "wall": [210.0], "worker": [70.0], "ratio": [0.95]},
        "floor": {"this process": [120.0], "postgres": [30.0]},
    }
    lines = offload.render(results, ["off", "0.5"]).splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["off", "0.5", "floor"]
    assert lines[1].split()[1:5] == ["0.80", "(0.80-0.80)", "250", "200"]
    assert lines[2].split()[4:7] == ["200", "150", "70"]
    assert lines[3].split() == ["floor", "120", "30"]
