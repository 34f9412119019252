"""``login-etl stack up | down | status``: a local stack that outlives the command.

``stack up`` starts the moto server (in its own session, so it survives the shell) and a
throwaway Postgres (``pg_ctl`` daemonises it), provisions them, and records what it started in
``.local-stack/stack.json`` (each server as soon as it runs: ``stack_record``). The other
commands find the stack there when the environment names none; ``stack down`` stops it, and
whatever a killed ``login-etl run`` left, and deletes their data.

Changes are exclusive: ``up`` and ``down`` hold ``.local-stack/lock`` (``flock``), so two
``stack up`` at once start one stack, and the second one reports it as already running.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from login_etl_local.stack import LOCAL_VISIBILITY_TIMEOUT_S, start_local_stack
from login_etl_local.stack_record import (
    LocalStack,
    StackRecord,
    leftovers,
    read_record,
    read_state,
    state_file,
)

LOCK_NAME = "lock"  # in the stack directory


class HalfDownError(Exception):
    """``stack up`` found a recorded stack that is not fully up; replacing it loses its data."""


@dataclass
class Stopped:
    """What ``stack down`` stopped."""

    stack: StackRecord | None = None
    leftovers: list[StackRecord] = field(default_factory=list)
    still_running: list[int] = field(default_factory=list)  # pids of ``run``s that own theirs


@contextlib.contextmanager
def stack_lock(path: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Exclusive use of the stack directory; waits for another ``stack`` command to finish."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            if on_wait is not None:
                on_wait(f"waiting for another login-etl stack command (pid {holder}) to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)
            fcntl.flock(lock, fcntl.LOCK_UN)


def stack_up(
    max_receive_count: int = 5,
    path: Path | None = None,
    *,
    replace: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> tuple[LocalStack, bool]:
    """Start and provision a stack unless one is recorded and running; (stack, started).

    A recorded stack that is not fully up is left alone (``HalfDownError``) unless ``replace``:
    its Postgres data and moto's in-memory keys would be lost.
    """
    path = path or state_file()
    with stack_lock(path.parent / LOCK_NAME, on_wait=on_step):
        existing = read_state(path)
        if existing is not None and existing.complete and all(existing.is_up()):
            return LocalStack.from_record(existing), False
        if existing is not None:
            if not replace:
                raise HalfDownError(
                    f"the stack recorded in {path} is not fully up: {existing.describe()}."
                    " Not replacing it, that would delete its data: `login-etl stack down`"
                    " stops what is left and deletes it, `login-etl stack up --replace` does"
                    " that and starts a new one"
                )
            existing.stop()
            path.unlink(missing_ok=True)
        started = start_local_stack(
            max_receive_count,
            LOCAL_VISIBILITY_TIMEOUT_S,
            record=path,
            detach=True,
            on_step=on_step,
        )
        return started.stack, True


def stack_down(path: Path | None = None) -> Stopped:
    """Stop the recorded stack and the leftovers of killed ``run``s; say what was stopped."""
    path = path or state_file()
    stopped = Stopped()
    if not path.parent.is_dir():
        return stopped
    with stack_lock(path.parent / LOCK_NAME):
        state = read_state(path)
        if state is not None:
            state.stop()
            path.unlink()
            stopped.stack = state
        for record_path, record in leftovers(path.parent):
            record.stop()
            record_path.unlink(missing_ok=True)
            stopped.leftovers.append(record)
        for record_path in sorted(path.parent.glob("run-*.json")):
            running = read_record(record_path)
            if running is not None and running.owner_pid is not None:
                stopped.still_running.append(running.owner_pid)
    return stopped
