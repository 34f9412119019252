"""Every way a command ends runs its cleanup: SIGTERM, SIGHUP and Ctrl-C become an exception.

Python's default for SIGTERM and SIGHUP is to die on the spot, skipping every ``finally``: the
moto server and the Postgres that a ``login-etl run`` had started kept running forever after a
``kill``. Inside ``clean_exits`` the three signals raise ``Terminated`` (a ``BaseException``,
like ``KeyboardInterrupt``), so the context managers that started servers stop them.

Two refinements make that cleanup reliable:

* only the first signal raises; later ones (a second Ctrl-C while the servers stop) are
  ignored, so the cleanup itself is not interrupted half-way;
* code that must not be cut in two (start a process *and* record its pid; stop a server) runs
  ``shielded``: a signal arriving inside is held and raised when the block ends.

What a SIGKILL leaves behind cannot be cleaned here; ``stack_record`` makes it findable.

Part of the CLI: ``main`` installs the handlers for every command. The local stack's servers
(``login_etl_local``) use ``shielded`` from here; the dependency goes that way only.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Terminated(BaseException):
    """The command was told to stop by a signal; its cleanup runs, then it exits 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process ended by this signal."""
        return 128 + self.signum


class _State:
    received: int | None = None  # the first signal, once one arrived
    shield_depth = 0
    pending: int | None = None  # a signal held by a shield


_state = _State()


def received_signal() -> int | None:
    """The signal that is ending this command, if one is."""
    return _state.received


def _handle(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001 - signal API
    if _state.received is not None:
        return  # already stopping: let the cleanup finish
    _state.received = signum
    if _state.shield_depth:
        _state.pending = signum
        return
    raise Terminated(signum)


@contextmanager
def clean_exits() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise ``Terminated`` inside; the old handlers come back after.

    Signal handlers can only be set from the main thread; elsewhere this changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _handle) for signum in SIGNALS}
    _state.received = _state.pending = None
    _state.shield_depth = 0
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def shielded() -> Iterator[None]:
    """Hold a signal that arrives inside until the block is done, then raise it."""
    _state.shield_depth += 1
    try:
        yield
    except BaseException:
        _state.shield_depth -= 1
        raise  # an exception is on its way out already: the cleanup it triggers runs
    _state.shield_depth -= 1
    if _state.shield_depth == 0 and _state.pending is not None:
        signum, _state.pending = _state.pending, None
        raise Terminated(signum)
