"""The mask worker, a real forked process: the same tokens, or the same tokens made here.

Whatever happens to the worker (killed, stopped, interrupted, left with an unread answer), the
caller gets one correct token per value; only the time differs.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from login_etl.adapters.mask_worker import MaskWorker
from login_etl.domain.masking import DeterministicMasker
from login_etl.observability import metrics

MASKER = DeterministicMasker(bytes(range(32)))
VALUES = [f"10.1.{i // 256}.{i % 256}" for i in range(600)]
VALUES += [f"{i:03d}-45-6789" for i in range(600)]
EXPECTED = [MASKER.mask(value) for value in VALUES]


@pytest.fixture(autouse=True)
def no_metric_left() -> Iterator[None]:
    """The failures counted here are not flushed by a handler: not into a later test's."""
    yield
    metrics.clear_metrics()


@pytest.fixture
def worker() -> Iterator[MaskWorker]:
    made = MaskWorker(MASKER.mask, timeout_s=5.0)
    yield made
    made.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) is not alive either.
    return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_the_worker_gives_the_tokens_of_the_mask_function(worker: MaskWorker) -> None:
    assert worker.submit(VALUES)() == EXPECTED
    first = worker.pid
    assert first is not None
    assert first != os.getpid()
    assert worker.submit(VALUES[::-1])() == EXPECTED[::-1]
    assert worker.pid == first  # one worker, kept between batches


def test_a_worker_killed_between_batches_is_replaced(worker: MaskWorker) -> None:
    worker.submit(VALUES[:10])()
    killed = worker.pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    assert wait_gone(killed)

    assert worker.submit(VALUES)() == EXPECTED  # made here, or by a new worker
    assert worker.submit(VALUES)() == EXPECTED
    assert worker.pid not in (None, killed)


def test_a_worker_killed_while_masking_leaves_the_values_to_this_process(
    worker: MaskWorker, function_logs: io.StringIO
) -> None:
    worker.start()
    pid = worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # it cannot answer before it dies
    tokens = worker.submit(VALUES)
    os.kill(pid, signal.SIGKILL)

    assert tokens() == EXPECTED
    logged = function_logs.getvalue()
    assert "mask worker failed" in logged
    assert "EOFError" in logged or "ConnectionResetError" in logged
    assert not any(value in logged for value in VALUES[:50])
    assert worker.pid is None  # closed; the next batch makes a new one


def test_a_stalled_worker_times_out_and_is_ended(function_logs: io.StringIO) -> None:
    worker = MaskWorker(MASKER.mask, timeout_s=0.3)
    try:
        worker.start()
        stalled = worker.pid
        assert stalled is not None
        os.kill(stalled, signal.SIGSTOP)

        started = time.monotonic()
        assert worker.submit(VALUES)() == EXPECTED
        assert time.monotonic() - started >= 0.3
        assert "TimeoutError" in function_logs.getvalue()
        assert wait_gone(stalled)  # killed, not left stopped
    finally:
        worker.close()


def test_an_answer_never_read_is_never_taken_for_a_later_one(worker: MaskWorker) -> None:
    """A batch that failed after handing its values over leaves their tokens in the pipe."""
    worker.submit(VALUES[600:])  # never read: the batch failed
    first = worker.pid
    # Same length, other values: a stale answer would fit.
    assert worker.submit(VALUES[:600])() == EXPECTED[:600]
    assert worker.pid != first


def test_an_interrupted_wait_ends_the_worker(worker: MaskWorker) -> None:
    worker.start()
    pid = worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    tokens = worker.submit(VALUES)
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            tokens()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert worker.pid is None
    assert wait_gone(pid)
    assert worker.submit(VALUES)() == EXPECTED


def test_the_worker_ignores_sigint(worker: MaskWorker) -> None:
    """Ctrl-C reaches the whole process group; the function decides what a batch does."""
    worker.submit(["1.2.3.4"])()  # the worker is past its set-up
    pid = worker.pid
    assert pid is not None
    ignored = int(Path(f"/proc/{pid}/status").read_text().split("SigIgn:")[1].split()[0], 16)
    assert ignored & (1 << (signal.SIGINT - 1))
    os.kill(pid, signal.SIGINT)
    time.sleep(0.1)
    assert alive(pid)
    assert worker.submit(VALUES)() == EXPECTED
    assert worker.pid == pid


def test_the_worker_holds_no_socket_but_its_pipe(worker: MaskWorker) -> None:
    """A copy of the database's socket would keep open a connection this process closed."""
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        worker.submit(["1.2.3.4"])()  # the worker is past its set-up
        pid = worker.pid
        assert pid is not None
        client.close()  # this process's copy: the worker must not hold another
        accepted.settimeout(2.0)
        assert accepted.recv(1) == b""  # EOF: the connection is really closed
        held = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        assert len([target for target in held if target.startswith("socket:")]) == 1  # the pipe
    finally:
        server.close()
        accepted.close()


def test_the_worker_ends_with_the_process_that_made_it(tmp_path: Path) -> None:
    script = (
        "import os\n"
        "from login_etl.adapters.mask_worker import MaskWorker\n"
        "w = MaskWorker(str.upper, 5.0)\n"
        "assert w.submit(['a'])() == ['A']\n"
        "print(w.pid, flush=True)\n"
        "os._exit(0)\n"  # no clean-up at all: as if killed
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert wait_gone(int(result.stdout.strip()))


def test_no_worker_is_forked_beside_another_thread(worker: MaskWorker) -> None:
    """A fork copies one thread; another's locks would stay held forever in the child."""
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert worker.submit(VALUES)() == EXPECTED  # masked here
        assert worker.pid is None
    finally:
        release.set()
        other.join()
    assert worker.submit(VALUES)() == EXPECTED
    assert worker.pid is not None


def test_a_value_the_mask_refuses_raises_as_it_would_without_the_worker(
    worker: MaskWorker,
) -> None:
    lone_surrogate = "\ud800"
    with pytest.raises(UnicodeEncodeError):
        MASKER.mask(lone_surrogate)
    tokens = worker.submit(["1.2.3.4", lone_surrogate])
    with pytest.raises(UnicodeEncodeError):
        tokens()
