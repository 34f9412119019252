"""The local stack as the CLI sees it: read from its record, never started or stopped here.

``login-etl stack up`` (``login_etl_local``) records its stack in ``.local-stack/stack.json`` at
the project's root (``stack_dir``: found from any subdirectory, as git finds its repository).
The operator commands read that record to act on the stack when the environment names none
(``targets``), with this module only: the CLI imports nothing of ``login_etl_local``, which
writes the record and owns the servers (``login_etl_local.stack_record`` adds the writing and
stopping to ``StackRecord``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

from login_etl_cli.ports import port_is_open

STACK_DIR_NAME = ".local-stack"
STATE_NAME = "stack.json"  # ``stack up``'s record, in the stack directory
PROJECT_MARKERS = (".git", "pyproject.toml")  # what makes a directory a project's root
REGION = "us-east-1"
# moto accepts any credentials; these only keep boto3 from looking for real ones.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# The local stack's throwaway PostgreSQL: loopback only, scram auth keeps the real code path.
POSTGRES_USER = "postgres"
POSTGRES_PASSWORD = "postgres"  # noqa: S105 - a throwaway server's, printed by `stack up` anyway
POSTGRES_DATABASE = "postgres"


def stack_dir(start: Path | None = None) -> Path:
    """The directory of this project's local stack, found as git finds its repository.

    Walking up from ``start`` (the working directory): the first ``.local-stack`` there is,
    else the one at the first project root (``PROJECT_MARKERS``), which need not exist yet.
    With no project above, the working directory's. So ``cd src && login-etl report`` finds the
    root's stack, and ``login-etl run`` from ``src`` never leaves a ``.local-stack`` in ``src``.
    """
    here = (start or Path.cwd()).absolute()
    for directory in (here, *here.parents):
        if (directory / STACK_DIR_NAME).is_dir() or any(
            (directory / marker).exists() for marker in PROJECT_MARKERS
        ):
            return directory / STACK_DIR_NAME
    return here / STACK_DIR_NAME


def state_file(start: Path | None = None) -> Path:
    """Where ``stack up`` records its stack (``stack_dir``'s ``stack.json``)."""
    return stack_dir(start) / STATE_NAME


def shown(path: Path) -> str:
    """``path`` as the user would type it from here: relative if under the working directory."""
    try:
        return str(path.relative_to(Path.cwd().absolute()))
    except ValueError:
        return str(path)


def postgres_url(port: int) -> str:
    """The local stack's database on ``port``."""
    return f"postgresql://{POSTGRES_USER}:{POSTGRES_PASSWORD}@127.0.0.1:{port}/{POSTGRES_DATABASE}"


@dataclass(frozen=True)
class Provisioned:
    """Names and addresses of what provisioning created, ready to be passed to the function."""

    queue_url: str
    queue_arn: str
    dlq_url: str
    kms_key_id: str
    data_key_parameter: str


@dataclass(frozen=True)
class StackRecord:
    """The servers of one local stack, filled in as they start."""

    moto_port: int | None = None
    moto_pid: int | None = None
    # When it started (/proc/<pid>/stat's starttime): with the port, what tells our moto from
    # a process that got its pid since (pids wrap within minutes where pid_max is 32768).
    moto_started: int | None = None
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

    def provisioned_resources(self) -> Provisioned:
        """What provisioning created (only for a complete record)."""
        if self.provisioned is None:
            raise LookupError("the local stack was not provisioned: `login-etl stack down`")
        return Provisioned(**self.provisioned)

    def describe(self) -> str:
        """One line: which servers answer, and where."""
        moto_up, postgres_up = self.is_up()
        moto = f"moto server {'up' if moto_up else 'DOWN'} (port {self.moto_port})"
        postgres = f"PostgreSQL {'up' if postgres_up else 'DOWN'} (port {self.postgres_port}"
        postgres += f", data in {self.postgres_data_dir})" if self.postgres_data_dir else ")"
        state = "" if self.complete else ", never finished starting"
        return f"{moto}, {postgres}{state}"


Record = TypeVar("Record", bound=StackRecord)


def read_record(path: Path, kind: type[Record]) -> Record | None:
    """The record at ``path``, as a ``kind``, if there is one."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    known = {f.name for f in fields(StackRecord)}
    return kind(**{k: v for k, v in data.items() if k in known})


def read_state(path: Path | None = None) -> StackRecord | None:
    """The stack ``stack up`` recorded (at ``path``, else ``state_file()``), complete or not."""
    return read_record(path or state_file(), StackRecord)


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
        if record.moto_port is None or record.postgres_port is None:
            raise LookupError("the local stack record is incomplete: `login-etl stack down`")
        return cls(
            f"http://127.0.0.1:{record.moto_port}",
            postgres_url(record.postgres_port),
            record.provisioned_resources(),
        )


def running_stack(path: Path | None = None) -> LocalStack | None:
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
