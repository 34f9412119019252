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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from login_etl.adapters.mask_worker import MaskWorker
from login_etl.domain.masking import DeterministicMasker
from login_etl.observability import metrics
from login_etl_cli.signals import clean_exits

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


@pytest.fixture
def impatient_worker() -> Iterator[MaskWorker]:
    made = MaskWorker(MASKER.mask, timeout_s=0.3)
    yield made
    made.close()


def stopped(worker: MaskWorker) -> int:
    """Start the worker and stop it (SIGSTOP): it can neither read nor answer. Its pid."""
    worker.start()
    pid = worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    return pid


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def interrupted_in(seconds: float) -> Iterator[None]:
    """A KeyboardInterrupt in ``seconds``, as Ctrl-C (or the CLI's SIGTERM handler) raises."""
    previous = signal.signal(signal.SIGALRM, _interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) is not alive either.
    return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"


def wait_gone(pid: int, seconds: float = 30.0) -> bool:
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
    pid = stopped(worker)  # it cannot answer before it dies
    tokens = worker.submit(VALUES)
    os.kill(pid, signal.SIGKILL)

    assert tokens() == EXPECTED
    logged = function_logs.getvalue()
    assert "mask worker failed" in logged
    assert "EOFError" in logged or "ConnectionResetError" in logged
    assert not any(value in logged for value in VALUES[:50])
    assert worker.pid is None  # closed; the next batch makes a new one


def test_a_stalled_worker_times_out_and_is_ended(
    impatient_worker: MaskWorker, function_logs: io.StringIO
) -> None:
    stalled = stopped(impatient_worker)

    started = time.monotonic()
    assert impatient_worker.submit(VALUES)() == EXPECTED
    assert time.monotonic() - started >= 0.3
    assert "TimeoutError" in function_logs.getvalue()
    assert wait_gone(stalled)  # killed, not left stopped


def test_an_answer_never_read_is_never_taken_for_a_later_one(worker: MaskWorker) -> None:
    """A batch that failed after handing its values over leaves their tokens in the pipe."""
    worker.submit(VALUES[600:])  # never read: the batch failed
    first = worker.pid
    # Same length, other values: a stale answer would fit.
    assert worker.submit(VALUES[:600])() == EXPECTED[:600]
    assert worker.pid != first


def test_an_interrupted_wait_ends_the_worker(worker: MaskWorker) -> None:
    pid = stopped(worker)
    tokens = worker.submit(VALUES)
    with interrupted_in(0.2), pytest.raises(KeyboardInterrupt):
        tokens()
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


# More than the pipe's buffer holds (180 kB), as the 13,000 values of a 10,000-record batch
# of the sample data are (197 kB pickled), and their tokens several times that.
LARGE = [f"{i:08d}-1111-4222-8333-444444444444" for i in range(20_000)]


T = TypeVar("T")


def finishes(call: Callable[[], T], unblock: Callable[[], None], seconds: float = 60.0) -> T:
    """``call()``'s result, made on a thread; ``unblock`` is run if it has not come by then.

    The bound is a guard for a call that would block for good, far beyond the worker's timeout.
    """
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(call())
        except BaseException as error:  # handed to the test
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        unblock()
        thread.join(seconds)
        pytest.fail(f"still blocked after {seconds} s, with a worker timeout well below")
    if errors:
        raise errors[0]
    return results[0]


def written_by(pid: int) -> int:
    """Bytes the process has written so far, in write calls that have returned."""
    line = next(x for x in Path(f"/proc/{pid}/io").read_text().splitlines() if "wchar" in x)
    return int(line.split()[1])


def wait_until_answering(pid: int, before: int) -> None:
    """Until the worker has sent its answer's header: the answer itself, larger than the pipe,
    is one write that waits for this process to read."""
    deadline = time.monotonic() + 60
    while written_by(pid) == before:
        assert time.monotonic() < deadline, "the worker never answered"
        time.sleep(0.02)


def test_a_worker_stalled_before_reading_a_large_request_does_not_block_it(
    impatient_worker: MaskWorker,
) -> None:
    """Only the answer's first byte was waited for with a timeout: the hand-over had none."""
    stalled = stopped(impatient_worker)

    def hand_over_and_wait() -> list[str]:
        return impatient_worker.submit(LARGE)()  # the hand-over is what blocked

    tokens = finishes(hand_over_and_wait, lambda: os.kill(stalled, signal.SIGKILL))
    assert tokens == [MASKER.mask(value) for value in LARGE]
    assert wait_gone(stalled)


def test_a_worker_stalled_in_the_middle_of_its_answer_does_not_block_the_batch() -> None:
    worker = MaskWorker(str.upper, timeout_s=0.3)
    try:
        worker.submit(["warm-up"])()
        stalled = worker.pid
        assert stalled is not None
        before = written_by(stalled)
        tokens = worker.submit(LARGE)
        wait_until_answering(stalled, before)
        os.kill(stalled, signal.SIGSTOP)

        assert finishes(tokens, lambda: os.kill(stalled, signal.SIGKILL)) == [
            value.upper() for value in LARGE
        ]
        assert wait_gone(stalled)
    finally:
        worker.close()


def test_an_interrupted_hand_over_ends_the_worker(worker: MaskWorker) -> None:
    """Half a request left in the pipe: the worker would take the next one's bytes for the rest."""
    pid = stopped(worker)  # the pipe fills: the hand-over waits
    with interrupted_in(0.2), pytest.raises(KeyboardInterrupt):
        worker.submit(LARGE)
    assert worker.pid is None
    assert wait_gone(pid)
    assert worker.submit(VALUES)() == EXPECTED


def test_a_worker_whose_answer_is_refused_leaves_no_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A failed batch leaves the answer unread: multiprocessing printed the worker's
    BrokenPipeError on the function's stderr."""
    capfd.readouterr()
    worker = MaskWorker(str.upper, timeout_s=5.0)
    worker.submit(["warm-up"])()
    pid = worker.pid
    assert pid is not None
    before = written_by(pid)
    worker.submit(LARGE)  # never read: the batch failed
    wait_until_answering(pid, before)
    worker.close()
    assert wait_gone(pid)
    assert "Traceback" not in capfd.readouterr().err


def test_a_hang_up_under_the_cli_ends_the_worker_without_a_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The worker kept the CLI's handlers (``clean_exits``): a terminal's SIGHUP raised in it."""
    capfd.readouterr()
    with clean_exits():
        worker = MaskWorker(str.upper, timeout_s=5.0)
        try:
            worker.submit(["warm-up"])()
            pid = worker.pid
            assert pid is not None
            os.kill(pid, signal.SIGHUP)
            assert wait_gone(pid)
        finally:
            worker.close()
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("spare", [0, 1, 2, 3, 4])
def test_a_worker_that_cannot_get_its_descriptors_leaves_the_values_to_this_process(
    spare: int,
) -> None:
    """Out of file descriptors at the pipe, the socket timeouts or the fork: masked here."""
    script = (
        "import os, resource\n"
        "from login_etl.adapters.mask_worker import MaskWorker\n"
        "w = MaskWorker(str.upper, 5.0)\n"
        "opened = max(int(fd) for fd in os.listdir('/proc/self/fd'))\n"
        f"limit = opened + 1 + {spare}\n"
        "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))\n"
        "assert w.submit(['a', 'b'])() == ['A', 'B']\n"
        "w.close()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, capture_output=True)
