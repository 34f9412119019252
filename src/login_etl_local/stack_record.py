"""What a command started, on disk from the moment each server runs, so that nothing is lost.

``stack up`` records its stack in ``.local-stack/stack.json``; a ``login-etl run`` that starts a
throwaway stack records it in ``.local-stack/run-<pid>.json`` and deletes the file when it
stopped it. ``.local-stack`` is the project root's, wherever in the project the command runs
(``stack_dir``). Each server is recorded as soon as it exists (moto's pid right after the fork,
Postgres's data directory before ``initdb``), so even a command killed with SIGKILL, which no
cleanup survives, leaves a record: ``stack status`` lists it, ``stack down`` stops it.

The record's fields and how the operator CLI reads it (``LocalStack``, ``running_stack``) are
``login_etl_cli.local_stack``'s: the CLI imports nothing of this package. Here is what only the
local stack does with a record: write it, find the leftovers of killed runs, stop the servers.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from login_etl_cli import local_stack
from login_etl_cli.local_stack import (
    DUMMY_CREDENTIALS,
    REGION,
    STACK_DIR_NAME,
    STATE_NAME,
    LocalStack,
    patched_environ,
    stack_dir,
    stack_environment,
    state_file,
)
from login_etl_cli.signals import shielded
from login_etl_local.postgres_server import PostgresServer

__all__ = [
    "DUMMY_CREDENTIALS",
    "REGION",
    "STACK_DIR_NAME",
    "STATE_NAME",
    "LocalStack",
    "StackRecord",
    "leftovers",
    "patched_environ",
    "read_record",
    "read_state",
    "run_record_path",
    "stack_dir",
    "stack_environment",
    "state_file",
]


@dataclass(frozen=True)
class StackRecord(local_stack.StackRecord):
    """A record as the local stack uses it: written, and its servers stopped, from here."""

    def owner_alive(self) -> bool:
        """The command that owns this stack still runs (so it will stop the stack itself)."""
        return self.owner_pid is not None and _alive(self.owner_pid)

    def postgres(self) -> PostgresServer | None:
        """Its Postgres server, if one was prepared."""
        if self.postgres_bin_dir is None or self.postgres_data_dir is None:
            return None
        return PostgresServer(
            Path(self.postgres_bin_dir), Path(self.postgres_data_dir), self.postgres_port or 0
        )

    def stop(self) -> None:
        """Stop both servers, whatever state they are in, and delete Postgres's data."""
        with shielded():
            if self.moto_pid is not None:
                _stop_moto(self.moto_pid, self.moto_port, self.moto_started)
            postgres = self.postgres()
            if postgres is not None:
                postgres.stop()

    def write(self, path: Path) -> StackRecord:
        """Save it (atomically: a reader sees the old record or the new one, never half)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(json.dumps(asdict(self), indent=2) + "\n")
        partial.replace(path)
        return self


def read_record(path: Path) -> StackRecord | None:
    """The record at ``path``, if there is one."""
    return local_stack.read_record(path, StackRecord)


def read_state(path: Path | None = None) -> StackRecord | None:
    """The stack ``stack up`` recorded (at ``path``, else ``state_file()``), complete or not."""
    return read_record(path or state_file())


def run_record_path(pid: int | None = None, directory: Path | None = None) -> Path:
    """Where a ``login-etl run`` records its throwaway stack."""
    return (directory or stack_dir()) / f"run-{pid or os.getpid()}.json"


def leftovers(directory: Path | None = None) -> list[tuple[Path, StackRecord]]:
    """Throwaway stacks whose ``run`` ended without stopping them (killed, or crashed)."""
    found = []
    for path in sorted((directory or stack_dir()).glob("run-*.json")):
        record = read_record(path)
        if record is not None and not record.owner_alive():
            found.append((path, record))
    return found


def _stop_moto(pid: int, port: int | None, started: int | None, grace_s: float = 10.0) -> None:
    """SIGTERM, and SIGKILL if it is still there after ``grace_s``; returns once it is gone."""
    if not _is_our_moto(pid, port, started):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _is_our_moto(pid, port, started) and _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has ended; only its parent has not collected it yet
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return True


def process_start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (/proc); None without procfs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # After the command name (in parentheses, which may hold spaces): field 22 is starttime.
    return int(stat.rsplit(") ", 1)[1].split()[19])


def _is_our_moto(pid: int, port: int | None, started: int | None) -> bool:
    """The pid is still the moto server of this record: not a process that reused the number,
    nor another checkout's moto that did (its port differs), nor one started since.

    ``started`` is None in a record of an earlier login-etl: the port is checked then.
    """
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return not Path("/proc").is_dir() and _alive(pid)  # no procfs (macOS): trust the pid
    if b"login_etl_local.moto_launcher" not in command:
        return False
    if port is not None and not _port_argument(command, port):
        return False
    return started is None or process_start_time(pid) == started


def _port_argument(command: list[bytes], port: int) -> bool:
    """``-p PORT`` (how ``MotoServer.spawn`` starts it) is in the command line."""
    return any(
        flag == b"-p" and value == str(port).encode() for flag, value in itertools.pairwise(command)
    )
