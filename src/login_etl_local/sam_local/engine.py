"""A container engine for ``sam local invoke``: the running one, or a ``dockerd`` of our own.

When ``docker info`` answers, that engine is used and left alone. Otherwise Debian's
``docker.io`` is installed (if missing) and one ``dockerd`` is started with everything private:
its socket and exec root in a run directory of ours, its data root in the cache (which is what
keeps the Lambda base image between runs). It is started so as to leave the host as it was:

- ``--iptables=false --ip6tables=false --ip-masq=false --ip-forward=false``: no packet-filter
  rules, no NAT, forwarding untouched. The container only talks to the host (its bridge
  address, the relay) and SAM reaches the container's published port through docker's userland
  proxy, so neither needs them; and no container can reach past the host;
- the default bridge stays: SAM creates its container on it and then joins the network
  samconfig names, and docker's proxy forwards the published port to the first network's
  address (with ``--bridge=none`` the invoke gets no answer). ``docker0`` is removed after.

``stop`` stops it by its pid and puts back whatever differs from the host state read before it
started (``host.restore``). The state is also written to the run directory, so that a run that
was killed mid-way is cleaned up by the next one before it starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from login_etl_local.sam_local import debian
from login_etl_local.sam_local.host import HostNetworkState, restore

# Debian packages providing what we run.
PACKAGES = {"dockerd": "docker.io", "docker": "docker.io"}
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class EngineUnavailableError(RuntimeError):
    """No container engine can run here; the message says why, in one line."""


@dataclass
class Engine:
    """A container engine reachable at ``docker_host``; ``ours`` when this process started it."""

    docker_host: str
    ours: bool
    version: str
    storage_driver: str
    installed: list[str] = field(default_factory=list)
    undone: list[str] = field(default_factory=list)  # what stop() had to put back
    _process: subprocess.Popen[bytes] | None = None
    _run_dir: Path | None = None
    _before: HostNetworkState | None = None

    def environment(self) -> dict[str, str]:
        """``DOCKER_HOST`` for the docker CLI and SAM (docker-py)."""
        return {"DOCKER_HOST": self.docker_host}

    def docker(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this engine."""
        return docker(self.docker_host, *arguments, check=check)

    def stop(self) -> None:
        """Stop our dockerd (not an engine we found running) and undo its host changes."""
        if not self.ours or self._process is None or self._run_dir is None:
            return
        _terminate(self._process.pid, self._process)
        if self._before is not None:
            self.undone = restore(self._before)
        (self._run_dir / STATE_FILE).unlink(missing_ok=True)
        shutil.rmtree(self._run_dir / "exec", ignore_errors=True)


STATE_FILE = "host-state.json"


def docker(
    docker_host: str, *arguments: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The docker CLI with ``DOCKER_HOST`` set; on failure its last line of error output."""
    done = subprocess.run(
        ["docker", *arguments],
        env={**os.environ, "DOCKER_HOST": docker_host},
        capture_output=True,
        text=True,
        check=False,
    )
    if check and done.returncode != 0:
        message = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"docker {arguments[0]} failed: {message}")
    return done


def running_engine() -> Engine | None:
    """The engine the environment points at (``DOCKER_HOST`` or the default socket), if up."""
    if shutil.which("docker") is None:
        return None
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return _describe(host, ours=False)


def start_engine(run_dir: Path, data_root: Path, dockerd: str = "dockerd") -> Engine:
    """Install docker.io if needed and start a private dockerd; ready when this returns."""
    found = running_engine()
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise EngineUnavailableError(
            "no container engine is running and only root can start one (run as root, or start"
            " Docker and set DOCKER_HOST)"
        )
    try:
        installed = debian.ensure_commands(PACKAGES) if dockerd == "dockerd" else []
    except debian.DebianError as error:
        raise EngineUnavailableError(str(error)) from error
    cleanup_killed_run(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data_root.mkdir(parents=True, exist_ok=True)
    before = HostNetworkState.read()
    (run_dir / STATE_FILE).write_text(before.to_json())
    socket = f"unix://{run_dir / 'docker.sock'}"
    log = (run_dir / "dockerd.log").open("wb")
    command = [
        dockerd,
        f"--data-root={data_root}",
        f"--exec-root={run_dir / 'exec'}",
        f"--pidfile={run_dir / 'dockerd.pid'}",
        f"--host={socket}",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-masq=false",
        "--ip-forward=false",
        "--userland-proxy=true",
    ]
    try:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    except OSError as error:
        (run_dir / STATE_FILE).unlink(missing_ok=True)
        raise EngineUnavailableError(f"cannot start {dockerd}: {error.strerror}") from error
    finally:
        log.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        engine = _describe(socket, ours=True)
        if engine is not None:
            engine.installed, engine._process, engine._run_dir = installed, process, run_dir
            engine._before = before
            return engine
        if process.poll() is not None:
            break
        time.sleep(0.2)
    _terminate(process.pid, process)
    restore(before)
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    raise EngineUnavailableError(f"dockerd did not start: {_last_error(run_dir / 'dockerd.log')}")


def cleanup_killed_run(run_dir: Path) -> list[str]:
    """Finish the cleanup of a run that was killed: stop its dockerd, restore the host."""
    state_file = run_dir / STATE_FILE
    if not state_file.exists():
        return []
    pid_file = run_dir / "dockerd.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().strip() or 0)
        if pid and _is_dockerd_of(pid, run_dir):
            _terminate(pid, None)
    undone = restore(HostNetworkState.from_json(state_file.read_text()))
    state_file.unlink()
    return undone


def _describe(docker_host: str, *, ours: bool) -> Engine | None:
    done = docker(docker_host, "info", "--format", "{{json .}}", check=False)
    if done.returncode != 0:
        return None
    try:
        info = json.loads(done.stdout)
    except json.JSONDecodeError:
        return None
    if not isinstance(info, dict) or not info.get("ServerVersion"):
        return None
    return Engine(docker_host, ours, str(info["ServerVersion"]), str(info.get("Driver", "?")))


def _is_dockerd_of(pid: int, run_dir: Path) -> bool:
    """The process is a dockerd whose exec root is in ``run_dir`` (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (
        bool(cmdline)
        and cmdline[0].endswith(b"dockerd")
        and any(arg == f"--exec-root={run_dir / 'exec'}".encode() for arg in cmdline)
    )


def _terminate(pid: int, process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM (dockerd stops its containers and its containerd), SIGKILL after a timeout."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return
        if process is None and not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if process is not None:
        process.wait()


def _last_error(log: Path) -> str:
    """The last line of dockerd's log that says something (its level=fatal / error line)."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if "level=fatal" in line or "level=error" in line:
            return line.split("msg=", 1)[-1].strip('"')[:300]
    return lines[-1][:300] if lines else "it exited without a word"
