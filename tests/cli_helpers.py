"""Running ``login-etl`` as a user does: a subprocess, without the test session's stack."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from login_etl_cli.commands.common import TARGET_LINE
from login_etl_local.event_source_mapping import HANG_GUARD_S as EMULATION_HANG_GUARD_S

# The session fixture's stack, which the command must not see: it finds or starts its own.
STACK_VARIABLES = ("AWS_ENDPOINT_URL", "DATABASE_URL", "QUEUE_URL", "DLQ_URL", "DATA_KEY_PARAMETER")
# Every process a marked command starts inherits this variable: moto, pg_ctl, the postmaster.
MARKER = "LOGIN_ETL_TEST_MARKER"
# Generous: only a hung command reaches it; a slow machine does not.
HANG_GUARD_S = int(EMULATION_HANG_GUARD_S)


def command_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without the session's stack, plus ``env``."""
    return {**{k: v for k, v in os.environ.items() if k not in STACK_VARIABLES}, **(env or {})}


def without_target_line(stderr: str) -> str:
    """stderr without the line that names the target (what the tests of errors look past)."""
    return "".join(
        line for line in stderr.splitlines(keepends=True) if not line.startswith(TARGET_LINE)
    )


def login_etl(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``login-etl ARGS`` in ``cwd`` (where ``stack up`` keeps its state), output captured.

    ``env`` adds variables after the session's stack ones were removed.
    """
    return subprocess.run(
        [sys.executable, "-m", "login_etl_cli", *args],
        capture_output=True,
        text=True,
        env=command_env(env),
        cwd=cwd,
        input=stdin,
        timeout=HANG_GUARD_S,
        check=False,
    )


def spawn(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, **popen: Any
) -> subprocess.Popen[str]:
    """``login-etl ARGS`` started, not waited for; output unbuffered, so it can be followed."""
    return subprocess.Popen(
        [sys.executable, "-m", "login_etl_cli", *args],
        stdout=popen.pop("stdout", subprocess.PIPE),
        stderr=popen.pop("stderr", subprocess.PIPE),
        text=True,
        env=command_env({"PYTHONUNBUFFERED": "1", **(env or {})}),
        cwd=cwd,
        **popen,
    )


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = HANG_GUARD_S) -> Any:
    """Poll until ``condition()`` is truthy; the timeout only catches a hang."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"still waiting, after {timeout_s} s, for {what}")


def exports(stdout: str) -> dict[str, str]:
    """The variables ``stack up`` printed."""
    return dict(
        line.removeprefix("export ").split("=", 1)
        for line in stdout.splitlines()
        if line.startswith("export ")
    )


def marked_processes(marker: str) -> list[int]:
    """Pids of the live processes that carry the marker in their environment."""
    wanted = f"{MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue
        if wanted in environment.split(b"\0"):
            found.append(int(entry.name))
    return found


def state(cwd: Path, name: str = "stack.json") -> dict[str, Any] | None:
    """A record of ``.local-stack`` (None if absent, or being replaced)."""
    try:
        loaded: dict[str, Any] = json.loads((cwd / ".local-stack" / name).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return loaded


@contextmanager
def marked_commands() -> Iterator[tuple[dict[str, str], Callable[[], list[int]]]]:
    """An environment that marks every process a command starts, and what is still running.

    ``TMPDIR`` is a world-readable directory of the test's own, so that the Postgres servers'
    directories land there (PostgreSQL runs as the 'postgres' user when the tests run as
    root). Afterwards anything still marked is killed, by pid: a failing test leaks nothing.
    """
    marker = uuid.uuid4().hex
    tmp = Path(tempfile.mkdtemp(prefix="login-etl-test-"))
    tmp.chmod(0o755)
    try:
        yield {MARKER: marker, "TMPDIR": str(tmp)}, lambda: marked_processes(marker)
    finally:
        for pid in marked_processes(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def record_dead_stack(cwd: Path) -> None:
    """A complete ``stack up`` record in ``cwd`` whose servers are gone (killed, say)."""
    directory = cwd / ".local-stack"
    directory.mkdir(parents=True, exist_ok=True)
    record = {
        "moto_port": free_port(),
        "moto_pid": None,
        "postgres_bin_dir": None,
        "postgres_data_dir": None,
        "postgres_port": free_port(),
        "provisioned": {
            "queue_url": "http://127.0.0.1:1/000000000000/login-queue",
            "queue_arn": "arn:aws:sqs:us-east-1:000000000000:login-queue",
            "dlq_url": "http://127.0.0.1:1/000000000000/login-queue-dlq",
            "kms_key_id": "00000000-0000-0000-0000-000000000000",
            "data_key_parameter": "/login-etl/data-key",
        },
        "owner_pid": None,
    }
    (directory / "stack.json").write_text(json.dumps(record))
