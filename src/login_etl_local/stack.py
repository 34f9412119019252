"""The local stack: moto server + throwaway Postgres, provisioned, as environment variables.

What a running stack is (``LocalStack``) and how it is found live in ``stack_record``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from login_etl_cli.signals import shielded
from login_etl_local.moto_server import MotoServer
from login_etl_local.postgres_server import PostgresServer
from login_etl_local.provisioning import provision_here
from login_etl_local.stack_record import (
    LocalStack,
    StackRecord,
    patched_environ,
    process_start_time,
    stack_environment,
)

# Local shortcut: a failed message comes back after 5 s, not after 6 x the function timeout, so
# retries and the redrive take seconds. Not less: the scheduled drain must delete a round before
# its messages become visible again. (The event source mapping emulation sets its own.)
LOCAL_VISIBILITY_TIMEOUT_S = 5


@contextmanager
def local_stack(
    max_receive_count: int = 5,
    visibility_timeout_s: int = LOCAL_VISIBILITY_TIMEOUT_S,
    record: Path | None = None,
) -> Iterator[LocalStack]:
    """Start moto and Postgres, provision, yield; stop both on the way out, whatever happens.

    ``record``: where to keep a ``StackRecord`` while it runs (``login-etl run``), so that the
    stack stays findable if this process is killed; deleted once the stack is stopped.
    """
    started = start_local_stack(
        max_receive_count, visibility_timeout_s, record=record, owner_pid=os.getpid()
    )
    try:
        yield started.stack
    finally:
        started.stop()


@dataclass
class StartedStack:
    """A stack this process started, with what it takes to stop it."""

    stack: LocalStack
    moto: MotoServer
    postgres: PostgresServer
    record: StackRecord
    record_path: Path | None

    def stop(self) -> None:
        """Stop both servers, then forget the record (not cut short by a signal)."""
        with shielded():
            try:
                self.postgres.stop()
            finally:
                self.moto.stop()
                if self.record_path is not None:
                    self.record_path.unlink(missing_ok=True)


def start_local_stack(
    max_receive_count: int = 5,
    visibility_timeout_s: int = LOCAL_VISIBILITY_TIMEOUT_S,
    *,
    record: Path | None = None,
    owner_pid: int | None = None,
    detach: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> StartedStack:
    """Start moto and Postgres and provision them; on any failure, stop what had started.

    Each server goes into ``record`` (if given) the moment it exists: moto's pid right after
    the fork (in one shielded step, so no signal falls in between), Postgres's data directory
    before ``initdb``. ``detach``: moto in a session of its own, to outlive this process.
    """
    say = on_step or (lambda _: None)
    path = record
    saved = StackRecord(owner_pid=owner_pid)

    def save(**changes: object) -> None:
        nonlocal saved
        saved = replace(saved, **changes)  # type: ignore[arg-type]
        if path is not None:
            saved.write(path)

    moto: MotoServer | None = None
    postgres: PostgresServer | None = None
    try:
        say("starting the moto server")
        with shielded():
            moto = MotoServer.spawn(detach=detach)
            save(
                moto_port=moto.port,
                moto_pid=moto.process.pid,
                moto_started=process_start_time(moto.process.pid),
            )
        moto.wait_until_up()
        postgres = PostgresServer.prepare()
        save(
            postgres_bin_dir=str(postgres.bin_dir),
            postgres_data_dir=str(postgres.data_dir),
            postgres_port=postgres.port,
        )
        say("starting PostgreSQL")
        postgres.boot()
        say("creating the queues, the KMS key and the data key")
        with patched_environ(stack_environment(moto.endpoint_url)):
            provisioned = provision_here(
                max_receive_count=max_receive_count,
                visibility_timeout_s=visibility_timeout_s,
            )
        save(provisioned=asdict(provisioned))
    except BaseException:
        with shielded():
            try:
                if postgres is not None:
                    postgres.stop()
            finally:
                if moto is not None:
                    moto.stop()
                if path is not None:
                    path.unlink(missing_ok=True)
        raise
    stack = LocalStack(moto.endpoint_url, postgres.url, provisioned)
    return StartedStack(stack, moto, postgres, saved, path)
