"""What a command started, on disk from the moment each server runs, so that nothing is lost.

``stack up`` records its stack in ``.local-stack/stack.json``; a ``login-etl run`` that starts a
throwaway stack records it in ``.local-stack/run-<pid>.json`` and deletes the file when it
stopped it. Each server is recorded as soon as it exists (moto's pid right after the fork,
Postgres's data directory before ``initdb``), so even a command killed with SIGKILL, which no
cleanup survives, leaves a record: ``stack status`` lists it, ``stack down`` stops it.

It is also how the operator CLI finds the stack ``stack up`` left running (``running_stack``,
used by ``login_etl_cli.targets``), with the environment that points a command at it: the one
module of ``login_etl_local`` the CLI imports, so it starts nothing and parses no arguments.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from login_etl_cli.ports import port_is_open
from login_etl_cli.signals import shielded
from login_etl_local.postgres_server import PostgresServer
from login_etl_local.provisioning import Provisioned

STACK_DIR = Path(".local-stack")
STATE_FILE = STACK_DIR / "stack.json"  # ``stack up``'s
REGION = "us-east-1"
# moto accepts any credentials; these only keep boto3 from looking for real ones.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass(frozen=True)
class StackRecord:
    """The servers of one local stack, filled in as they start."""

    moto_port: int | None = None
    moto_pid: int | None = None
    postgres_bin_dir: str | None = None
    postgres_data_dir: str | None = None
    postgres_port: int | None = None
    provisioned: dict[str, str] | None = None  # None until provisioning finished
    owner_pid: int | None = None  # the command that stops it itself (``run``); None: stack up's

    @property
    def complete(self) -> bool:
        """Started and provisioned: usable by the other commands."""
        return self.provisioned is not None and self.postgres_port is not None

    def is_up(self) -> tuple[bool, bool]:
        """(moto answers, Postgres answers)."""
        return (
            self.moto_port is not None and port_is_open(self.moto_port),
            self.postgres_port is not None and port_is_open(self.postgres_port),
        )

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

    def provisioned_resources(self) -> Provisioned:
        """What provisioning created (only for a complete record)."""
        if self.provisioned is None:
            raise LookupError("the local stack was not provisioned: `login-etl stack down`")
        return Provisioned(**self.provisioned)

    def stop(self) -> None:
        """Stop both servers, whatever state they are in, and delete Postgres's data."""
        with shielded():
            if self.moto_pid is not None:
                _stop_moto(self.moto_pid)
            postgres = self.postgres()
            if postgres is not None:
                postgres.stop()

    def describe(self) -> str:
        """One line: which servers answer, and where."""
        moto_up, postgres_up = self.is_up()
        moto = f"moto server {'up' if moto_up else 'DOWN'} (port {self.moto_port})"
        postgres = f"PostgreSQL {'up' if postgres_up else 'DOWN'} (port {self.postgres_port}"
        postgres += f", data in {self.postgres_data_dir})" if self.postgres_data_dir else ")"
        state = "" if self.complete else ", never finished starting"
        return f"{moto}, {postgres}{state}"

    def write(self, path: Path) -> StackRecord:
        """Save it (atomically: a reader sees the old record or the new one, never half)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(json.dumps(asdict(self), indent=2) + "\n")
        partial.replace(path)
        return self


def read_record(path: Path) -> StackRecord | None:
    """The record at ``path``, if there is one."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    known = {f.name for f in fields(StackRecord)}
    return StackRecord(**{k: v for k, v in data.items() if k in known})


def run_record_path(pid: int | None = None, directory: Path = STACK_DIR) -> Path:
    """Where a ``login-etl run`` records its throwaway stack."""
    return directory / f"run-{pid or os.getpid()}.json"


def leftovers(directory: Path = STACK_DIR) -> list[tuple[Path, StackRecord]]:
    """Throwaway stacks whose ``run`` ended without stopping them (killed, or crashed)."""
    found = []
    for path in sorted(directory.glob("run-*.json")):
        record = read_record(path)
        if record is not None and not record.owner_alive():
            found.append((path, record))
    return found


def _stop_moto(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM, and SIGKILL if it is still there after ``grace_s``; returns once it is gone."""
    if not _is_our_moto(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _is_our_moto(pid) and _alive(pid):
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


def _is_our_moto(pid: int) -> bool:
    """The pid is still our moto server (not a process that reused the number since)."""
    try:
        return b"login_etl_local.moto_launcher" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return not Path("/proc").is_dir() and _alive(pid)  # no procfs (macOS): trust the pid


@dataclass
class LocalStack:
    """Endpoints and provisioned resources of a running local stack."""

    aws_endpoint_url: str
    database_url: str
    provisioned: Provisioned

    def environment(self) -> dict[str, str]:
        """What the function and boto3 need: the same variables one would set for AWS."""
        return {
            **stack_environment(self.aws_endpoint_url),
            "DATABASE_URL": self.database_url,
            "DATA_KEY_PARAMETER": self.provisioned.data_key_parameter,
            "QUEUE_URL": self.provisioned.queue_url,
            "DLQ_URL": self.provisioned.dlq_url,  # for the operator commands, not the function
        }

    @classmethod
    def from_record(cls, record: StackRecord) -> LocalStack:
        """The stack a complete record describes."""
        postgres = record.postgres()
        if record.moto_port is None or postgres is None:
            raise LookupError("the local stack record is incomplete: `login-etl stack down`")
        return cls(
            f"http://127.0.0.1:{record.moto_port}", postgres.url, record.provisioned_resources()
        )


def read_state(path: Path = STATE_FILE) -> StackRecord | None:
    """The stack ``stack up`` recorded, if any (complete or not)."""
    return read_record(path)


def running_stack(path: Path = STATE_FILE) -> LocalStack | None:
    """``stack up``'s stack if it is recorded, complete, and both servers answer."""
    record = read_state(path)
    if record is None or not record.complete or not all(record.is_up()):
        return None
    return LocalStack.from_record(record)


def stack_environment(aws_endpoint_url: str) -> dict[str, str]:
    """boto3's standard variables for the emulator: endpoint, region, dummy credentials."""
    return {
        "AWS_ENDPOINT_URL": aws_endpoint_url,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        **DUMMY_CREDENTIALS,
    }


@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration, restoring the previous values after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
