"""``login-etl stack up | down | status``: a local stack that outlives the command.

``stack up`` starts the moto server (in its own session, so it survives the shell) and a
throwaway Postgres (``pg_ctl`` daemonises it), provisions them, and records what it started in
``.local-stack/stack.json``. The other commands find the stack there when ``AWS_ENDPOINT_URL``
and ``DATABASE_URL`` are not set; ``stack down`` stops both and deletes their data.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

from login_etl_tools.moto_server import MotoServer
from login_etl_tools.ports import port_is_open
from login_etl_tools.postgres_server import PostgresServer
from login_etl_tools.provisioning import Provisioned, provision_here
from login_etl_tools.stack import (
    LOCAL_VISIBILITY_TIMEOUT_S,
    LocalStack,
    patched_environ,
    stack_environment,
)

STATE_FILE = Path(".local-stack") / "stack.json"


@dataclass(frozen=True)
class StackState:
    """What ``stack up`` started, enough to find and stop it from another process."""

    moto_pid: int
    moto_port: int
    postgres_bin_dir: str
    postgres_data_dir: str
    postgres_port: int
    provisioned: dict[str, str]

    def stack(self) -> LocalStack:
        """The running stack, as the other commands use it."""
        return LocalStack(
            f"http://127.0.0.1:{self.moto_port}",
            self._postgres().url,
            Provisioned(**self.provisioned),
        )

    def is_up(self) -> tuple[bool, bool]:
        """(moto answers, Postgres answers)."""
        return port_is_open(self.moto_port), port_is_open(self.postgres_port)

    def _postgres(self) -> PostgresServer:
        return PostgresServer(
            Path(self.postgres_bin_dir), Path(self.postgres_data_dir), self.postgres_port
        )

    def stop(self) -> None:
        """Stop both servers (whatever state they are in) and delete Postgres's data."""
        if _is_our_moto(self.moto_pid):  # not a process that reused the pid since
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.moto_pid, signal.SIGTERM)
        self._postgres().stop()


def _is_our_moto(pid: int) -> bool:
    try:
        return b"login_etl_tools.moto_launcher" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return not Path("/proc").is_dir()  # no procfs (macOS): trust the recorded pid


def read_state(path: Path = STATE_FILE) -> StackState | None:
    """The recorded stack, if ``stack up`` left one."""
    if not path.exists():
        return None
    return StackState(**json.loads(path.read_text()))


def stack_up(max_receive_count: int = 5, path: Path = STATE_FILE) -> tuple[LocalStack, bool]:
    """Start and provision a stack unless one is recorded and running; (stack, started)."""
    existing = read_state(path)
    if existing is not None and all(existing.is_up()):
        return existing.stack(), False
    if existing is not None:  # half dead: clean up before starting afresh
        existing.stop()
    moto = MotoServer.start(detach=True)
    try:
        postgres = PostgresServer.start()
    except BaseException:
        moto.stop()
        raise
    endpoint = moto.endpoint_url
    with patched_environ(stack_environment(endpoint)):
        provisioned = provision_here(
            max_receive_count=max_receive_count,
            visibility_timeout_s=LOCAL_VISIBILITY_TIMEOUT_S,
        )
    state = StackState(
        moto.process.pid,
        moto.port,
        str(postgres.bin_dir),
        str(postgres.data_dir),
        postgres.port,
        asdict(provisioned),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(state), indent=2) + "\n")
    return state.stack(), True


def stack_down(path: Path = STATE_FILE) -> bool:
    """Stop the recorded stack; False if there was none."""
    state = read_state(path)
    if state is None:
        return False
    state.stop()
    path.unlink()
    return True
