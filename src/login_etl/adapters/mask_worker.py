"""A second process that masks part of a batch while this one masks the rest (``MaskOffload``).

Masking is two thirds of a batch's Python work (callgrind) and holds the GIL: a thread cannot
share it, a process can. With two CPUs (a Lambda function of 3,538 MB or more, or a laptop),
the worker masks the last part of the batch while this process masks the first part and
streams its rows to Postgres (``config.parallel_masking``).

The worker is a fork of this process, made while it runs a single thread (just before the
batch's writer thread starts), so it holds the same mask function (the same key, its own copy
of the cache) and nothing is sent to it but values. It is made at the first large batch and
lives as long as the container; it exits when its pipe closes, which happens when this process
exits, however it exits. It closes every other socket it inherited: a copy of the database's
would keep a connection this process closes open on the server. It ignores SIGINT and takes
SIGTERM's and SIGHUP's defaults: a Ctrl-C reaches the whole process group, and this process
decides what a batch does about it.

The worker can only ever cost time. If it cannot be made, dies, stalls past ``timeout_s`` or
answers anything but one token a value, the values are masked here instead (the rows are the
same), the failure is logged with its exception class only, and the worker is made again for a
later batch.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import stat
import struct
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection

from login_etl.observability import report_mask_worker_failure

# What a failing worker or pipe raises in this process: a dead worker's pipe (EOFError,
# BrokenPipeError, ConnectionResetError, all OSError), a pickle of the wrong shape.
_WORKER_ERRORS = (OSError, EOFError, ValueError, TypeError, TimeoutError)


class MaskWorker:
    """One worker process for one mask function; ``submit`` never fails, it falls back."""

    def __init__(self, mask: Callable[[str], str], timeout_s: float) -> None:
        self._mask, self._timeout_s = mask, timeout_s
        self._process: multiprocessing.process.BaseProcess | None = None
        self._pipe: Connection | None = None
        self._request = 0
        # An answer not yet read: a batch that failed before reading it. A worker in that
        # state is ended, so that no later batch can ever take those tokens for its own.
        self._awaiting = False

    def __repr__(self) -> str:
        running = self._process is not None and self._process.is_alive()
        return f"MaskWorker(running={running})"

    @property
    def pid(self) -> int | None:
        """The worker's process id, while there is one."""
        return None if self._process is None else self._process.pid

    def start(self) -> bool:
        """Make the worker now if there is none; False if it cannot be made safely.

        A fork copies only the calling thread: any other thread's locks (the logging module's,
        a queue's) would be held forever in the child. So there must be no other thread: the
        pipeline submits before the store starts the batch's writer thread.
        """
        if self._pipe is not None:
            return True
        if threading.active_count() != 1:
            return False
        context = multiprocessing.get_context("fork")
        try:
            ours, theirs = context.Pipe()
        except OSError as error:  # no descriptor left (EMFILE): mask here
            report_mask_worker_failure(type(error).__name__)
            return False
        process = context.Process(
            target=_serve, args=(theirs, ours, self._mask), name="login-etl-mask", daemon=True
        )
        try:
            _bound_waits(ours, self._timeout_s)
            process.start()
        except OSError as error:  # no memory, no process slot, no descriptor: mask here
            ours.close()
            theirs.close()
            report_mask_worker_failure(type(error).__name__)
            return False
        theirs.close()
        self._process, self._pipe = process, ours
        return True

    def submit(self, values: list[str]) -> Callable[[], list[str]]:
        """Start masking ``values`` in the worker; the returned call waits for the tokens."""
        if self._awaiting:
            self.close()
        if not self.start() or self._pipe is None:
            return lambda: self._mask_here(values)
        pipe = self._pipe
        self._request += 1
        request = self._request
        try:
            pipe.send((request, values))
        except _WORKER_ERRORS as error:
            return self._failed(error, values)
        except BaseException:
            self.close()  # interrupted half-way: the worker would read the rest of a request
            raise  # in the next one's bytes
        self._awaiting = True

        def tokens() -> list[str]:
            try:
                answer = _answer(pipe, request, len(values), self._timeout_s)
            except _WORKER_ERRORS as error:
                return self._failed(error, values)()
            except BaseException:
                self.close()  # interrupted while waiting: the answer would be left unread
                raise
            self._awaiting = False
            return answer

        return tokens

    def close(self) -> None:
        """End the worker: its pipe closes, it exits; killed if it does not."""
        process, pipe = self._process, self._pipe
        self._process = self._pipe = None
        self._awaiting = False
        if pipe is not None:
            pipe.close()
        if process is not None:
            process.join(timeout=1.0)
            if process.is_alive():
                process.kill()
                process.join(timeout=1.0)

    def _failed(self, error: BaseException, values: list[str]) -> Callable[[], list[str]]:
        report_mask_worker_failure(type(error).__name__)
        self.close()  # a worker in an unknown state is never asked again
        return lambda: self._mask_here(values)

    def _mask_here(self, values: list[str]) -> list[str]:
        mask = self._mask
        return [mask(value) for value in values]


def _bound_waits(pipe: Connection, timeout_s: float) -> None:
    """No read or write on this process's end of the pipe blocks longer than ``timeout_s``.

    ``poll`` bounds only the wait for an answer's first byte. A worker stalled before it read
    a request blocked ``send`` for good once the pipe's buffer was full (it holds 180 kB; the
    13,000 values of a 10,000-record batch of the sample data are 197 kB pickled, their tokens
    several times that), and one stalled in the middle of its answer blocked ``recv``: the
    batch hung until the Lambda timeout (found in review). A socket timeout makes such a read
    or write fail (``BlockingIOError``), as a dead worker's would.
    The socket module's own timeout is no use here: it makes the descriptor non-blocking.
    """
    seconds = int(timeout_s)
    timeval = struct.pack("ll", seconds, int((timeout_s - seconds) * 1_000_000))
    with socket.socket(fileno=os.dup(pipe.fileno())) as end:  # the same socket, another fd
        end.setblocking(True)  # as multiprocessing made it, whatever the default timeout
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)


def _close_sockets_but(keep: int) -> None:
    """Close every inherited socket but the pipe (the database's among them).

    Sockets only: multiprocessing tells this process that the worker has exited when a pipe
    the worker holds closes, so closing every descriptor made a live worker look dead (a
    ``join`` then blocked on it; found by the stalled-worker test).
    """
    for name in os.listdir("/proc/self/fd"):
        descriptor = int(name)
        if descriptor <= 2 or descriptor == keep:
            continue
        try:
            if stat.S_ISSOCK(os.fstat(descriptor).st_mode):
                os.close(descriptor)
        except OSError:
            continue  # the listing's own descriptor, closed by now


def _answer(pipe: Connection, request: int, count: int, timeout_s: float) -> list[str]:
    """The worker's tokens for ``request``: ``count`` strings, or an exception."""
    if not pipe.poll(timeout_s):
        raise TimeoutError("the mask worker did not answer in time")
    answered, answer = pipe.recv()
    if answered != request or type(answer) is not list or len(answer) != count:
        raise ValueError("the mask worker answered something else")
    if not all(type(token) is str for token in answer):
        raise TypeError("the mask worker answered something else")
    return answer


def _serve(pipe: Connection, parents_end: Connection, mask: Callable[[str], str]) -> None:
    """The worker: a list of values in, their tokens out, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Not the CLI's handlers (``login_etl_cli.signals``): raising in here printed
    # multiprocessing's traceback of the worker on stderr, a terminal's SIGHUP for one.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    parents_end.close()  # or the worker would hold its own pipe open, and never see EOF
    _close_sockets_but(pipe.fileno())
    while True:
        try:
            request, values = pipe.recv()
        except (EOFError, OSError):
            return  # this process is gone, or closed the pipe
        try:
            answer: list[str] | None = [mask(value) for value in values]
        except Exception:  # the caller masks them again, and gets the error
            answer = None  # never the exception: its message could hold a value
        try:
            pipe.send((request, answer))
        except OSError:
            return  # this process gave up on the answer (a failed batch): no traceback
