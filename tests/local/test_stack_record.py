"""A stack record stops its own servers only: never a process that got a recorded pid since."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from login_etl_local.stack_record import StackRecord, process_start_time

PORT = 41234


@pytest.fixture
def moto_lookalike() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line is a moto server's: another checkout's, say, on PORT."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(600)",
            "login_etl_local.moto_launcher",
            "-H",
            "127.0.0.1",
            "-p",
            str(PORT),
        ]
    )
    yield process
    process.kill()
    process.wait()


@pytest.mark.parametrize(
    ("port", "started_offset"),
    [(PORT + 1, 0), (PORT, -1)],
    ids=["another port", "started at another time"],
)
def test_a_stale_record_does_not_stop_a_moto_that_is_not_its_own(
    moto_lookalike: subprocess.Popen[bytes], port: int, started_offset: int
) -> None:
    started = process_start_time(moto_lookalike.pid)
    assert started is not None
    # The record's pid was reused: by a moto of another port, or one started since.
    record = StackRecord(
        moto_pid=moto_lookalike.pid, moto_port=port, moto_started=started + started_offset
    )

    record.stop()

    assert moto_lookalike.poll() is None  # still running


def test_a_record_stops_its_own_moto(moto_lookalike: subprocess.Popen[bytes]) -> None:
    started = process_start_time(moto_lookalike.pid)
    record = StackRecord(moto_pid=moto_lookalike.pid, moto_port=PORT, moto_started=started)

    record.stop()

    assert moto_lookalike.wait(timeout=30) is not None
