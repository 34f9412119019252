"""LocalStack for ``make test-sam-local``: installed here, started offline, stopped for good.

``localstack-core`` (pinned with everything it runs with in ``localstack-requirements.txt``)
goes into a venv of its own under CPython 3.13, kept in the cache like the stand-in image and
rebuilt only when the pins, the interpreter or the executor plugin change. It is started with
what keeps it off the network and out of the host's files:

- ``OVERRIDE_IN_DOCKER=0`` and a ``FILESYSTEM_ROOT`` of its own: a machine with ``/.dockerenv``
  would otherwise make it believe it runs in a container (``/var/lib/localstack``, 0.0.0.0);
- ``GATEWAY_SERVER=hypercorn``: the default server ignores ``GATEWAY_LISTEN``'s addresses and
  binds 0.0.0.0; hypercorn binds exactly loopback and the docker network's gateway;
- ``SKIP_SSL_CERT_DOWNLOAD``, ``DNS_ADDRESS=0``, ``DISABLE_EVENTS``: no certificate download,
  no DNS server of its own, no analytics;
- ``SQS_ENDPOINT_STRATEGY=off`` with ``LOCALSTACK_HOST``: queue URLs on the address it listens on;
- ``LAMBDA_RUNTIME_EXECUTOR=login-etl-offline`` (``localstack_offline_executor``): its own
  executor downloads an init binary and pulls the runtime image when a function is created.

It runs in a process group of its own. After an SQS-heavy run it logs "Completed, bye!" on
SIGTERM and stays alive (its metric threads retry), so ``stop`` gives it a grace period, then
kills the whole group, then checks that nothing of it is left running or listening. Its pid
and port are written to the run directory first, so the next run stops what a killed one left.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from login_etl_local.sam_local import runtime_python

PYTHON_VERSION = "3.13"  # LocalStack's own images run 3.13
HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "localstack-requirements.txt"
EXECUTOR = HERE / "localstack_offline_executor.py"
EXECUTOR_MODULE = "login_etl_localstack_offline"
EXECUTOR_NAME = "login-etl-offline"
EXECUTOR_DIST = "login_etl_localstack_offline-1.dist-info"
# What the template needs deployed, and what the function calls when invoked.
SERVICES = (
    "sqs,kms,ssm,secretsmanager,sts,"
    "cloudformation,s3,lambda,iam,events,logs,cloudwatch"
)  # fmt: skip
START_TIMEOUT_S = 120.0
GRACE_S = 10.0  # after SIGTERM, before the group is killed
STATE_FILE = "localstack.json"
ENVIRONMENTS_FILE = "localstack-function-environments.jsonl"


class LocalStackError(RuntimeError):
    """LocalStack could not be installed or started; the message says why."""


@dataclass(frozen=True)
class Installed:
    """LocalStack's venv, and how it came to be there."""

    python: Path
    how: str  # "cached" or "installed"
    seconds: float
    size_bytes: int


@dataclass
class RunningLocalStack:
    """A LocalStack this process started, listening on loopback and ``gateway`` at ``port``."""

    process: subprocess.Popen[bytes]
    port: int
    gateway: str
    root: Path  # its filesystem root, home and log; removed by stop()
    environments_file: Path  # what the offline executor records of each function's environment

    @property
    def endpoint_url(self) -> str:
        """As the host reaches it."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        """As a container on the docker network reaches it."""
        return f"http://{self.gateway}:{self.port}"

    def stop(self) -> list[str]:
        """Grace period, then the group; what was still there at each step (often nothing)."""
        return stop_group(self.process.pid, self.process, self.port, self.root)


def version() -> str:
    """localstack-core's pinned version."""
    for line in REQUIREMENTS.read_text().splitlines():
        if line.startswith("localstack-core=="):
            return line.split("==", 1)[1].strip()
    raise LocalStackError(f"{REQUIREMENTS.name} pins no localstack-core")


def ensure_venv(cache_dir: Path, explicit_python: str | None = None) -> Installed:
    """LocalStack's venv in the cache: kept if its key matches, else made anew."""
    started = time.monotonic()
    python = runtime_python.find(PYTHON_VERSION, explicit_python)
    venv = cache_dir / "localstack-venv"
    key = _key(python.full_version, str(python.prefix))
    stamp = venv / ".login-etl-key"
    if stamp.exists() and stamp.read_text().strip() == key:
        return Installed(venv / "bin" / "python", "cached", time.monotonic() - started, 0)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([str(python.executable), "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    done = subprocess.run(
        [*pip, "install", "--quiet", "--no-deps", "-r", str(REQUIREMENTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise LocalStackError(f"installing localstack-core failed: {last}")
    _install_executor(venv)
    stamp.write_text(key + "\n")
    return Installed(
        venv / "bin" / "python", "installed", time.monotonic() - started, _disk_usage(venv)
    )


def _key(full_version: str, prefix: str) -> str:
    """Changes with the pins, the interpreter, the executor and this recipe."""
    parts = [
        REQUIREMENTS.read_bytes(),
        EXECUTOR.read_bytes(),
        Path(__file__).read_bytes(),
        full_version.encode(),
        prefix.encode(),
    ]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


def _install_executor(venv: Path) -> None:
    """The executor module and the entry point LocalStack's plugin manager finds it by."""
    site = next((venv / "lib").glob("python3.*/site-packages"))
    shutil.copyfile(EXECUTOR, site / f"{EXECUTOR_MODULE}.py")
    dist = site / EXECUTOR_DIST
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: login-etl-localstack-offline\nVersion: 1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[localstack.lambda.runtime_executor]\n"
        f"{EXECUTOR_NAME} = {EXECUTOR_MODULE}:OfflineExecutorPlugin\n"
    )
    (dist / "INSTALLER").write_text("login-etl\n")
    files = [f"{EXECUTOR_MODULE}.py", *(f"{EXECUTOR_DIST}/{n}" for n in ("METADATA",
             "entry_points.txt", "INSTALLER", "RECORD"))]  # fmt: skip
    (dist / "RECORD").write_text("".join(f"{name},,\n" for name in files))


def free_port(*hosts: str) -> int:
    """A port free on every one of ``hosts`` (chosen on the first, checked on the others)."""
    for _ in range(20):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = int(probe.getsockname()[1])
        if all(_can_bind(host, port) for host in hosts):
            return port
    raise LocalStackError(f"no port free on all of {', '.join(hosts)}")


def _can_bind(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def settings(root: Path, port: int, gateway: str) -> dict[str, str]:
    """The whole environment LocalStack runs with (nothing inherited but PATH and LANG)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(root / "home"),
        "XDG_CACHE_HOME": str(root / "home" / ".cache"),  # plux's entry-point cache
        "OVERRIDE_IN_DOCKER": "0",
        "FILESYSTEM_ROOT": str(root / "fs"),
        "GATEWAY_SERVER": "hypercorn",
        "GATEWAY_LISTEN": f"127.0.0.1:{port},{gateway}:{port}",
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
        "SQS_ENDPOINT_STRATEGY": "off",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DNS_ADDRESS": "0",
        "DISABLE_EVENTS": "1",
        "SERVICES": SERVICES,
        "LAMBDA_RUNTIME_EXECUTOR": EXECUTOR_NAME,
        "LOGIN_ETL_LOCALSTACK_ENVIRONMENTS": str(root / ENVIRONMENTS_FILE),
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def start(python: Path, run_dir: Path, gateway: str) -> RunningLocalStack:
    """Start it in a group of its own; ready (every service available) when this returns."""
    root = run_dir / "localstack"
    shutil.rmtree(root, ignore_errors=True)
    (root / "home").mkdir(parents=True)
    port = free_port("127.0.0.1", gateway)
    with (root / "localstack.log").open("wb") as log:
        process = subprocess.Popen(
            [str(python), "-m", "localstack.runtime.main"],
            env=settings(root, port, gateway),
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: Ctrl-C is ours to pass on, stop() kills all
        )
    (run_dir / STATE_FILE).write_text(
        json.dumps({"pid": process.pid, "port": port, "root": str(root)})
    )
    running = RunningLocalStack(process, port, gateway, root, root / ENVIRONMENTS_FILE)
    try:
        _wait_until_ready(running)
    except BaseException:
        running.stop()
        (run_dir / STATE_FILE).unlink(missing_ok=True)
        raise
    return running


def _wait_until_ready(running: RunningLocalStack) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    wanted = set(SERVICES.split(","))
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise LocalStackError(f"LocalStack exited at start: {_last_line(running.root)}")
        try:
            health = f"{running.endpoint_url}/_localstack/health"  # http, loopback: ours
            with urllib.request.urlopen(health, timeout=2) as answer:  # noqa: S310
                services = json.loads(answer.read())["services"]
            if all(services.get(name) in ("available", "running") for name in wanted):
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise LocalStackError(f"LocalStack not ready in {START_TIMEOUT_S:.0f} s")


def stop_recorded(run_dir: Path) -> list[str]:
    """Stop the LocalStack a killed run left (by the state file); what had to be done."""
    state_file = run_dir / STATE_FILE
    if not state_file.exists():
        return []
    state = json.loads(state_file.read_text())
    group = int(state["pid"])
    done = []
    if _runs_localstack(group):  # not a pid reused since by something else
        said = stop_group(group, None, int(state["port"]), Path(state["root"]))
        done = [f"stopped the LocalStack it left ({'; '.join(said) or 'on SIGTERM'})"]
    shutil.rmtree(state["root"], ignore_errors=True)
    state_file.unlink()
    return done


def _runs_localstack(group: int) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            stat = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[2]) == group and b"localstack.runtime.main" in cmdline.read_bytes():
                return True
    return False


def forget(run_dir: Path) -> None:
    """The state file, once the LocalStack it names is stopped."""
    (run_dir / STATE_FILE).unlink(missing_ok=True)


def stop_group(
    group: int,
    process: subprocess.Popen[bytes] | None,
    port: int,
    root: Path,
    grace_s: float = GRACE_S,
) -> list[str]:
    """SIGTERM to the group, ``grace_s``, SIGKILL to what is left; Ctrl-C held until done."""
    said: list[str] = []
    held = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        if group_alive(group):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while group_alive(group) and time.monotonic() < deadline:
                if process is not None:
                    process.poll()  # reap the leader, or it stays a zombie in the group
                time.sleep(0.2)
            if group_alive(group):
                said.append(f"still running {grace_s:g} s after SIGTERM: killed its group")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
        if process is not None:
            process.wait()
        deadline = time.monotonic() + 10
        while group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.1)
        if group_alive(group):
            said.append("processes of its group survived SIGKILL")
        if _listening(port):
            said.append(f"port {port} still listening")
        shutil.rmtree(root, ignore_errors=True)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
    return said


def group_alive(group: int) -> bool:
    """A process (not a zombie) in ``group`` still exists."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def _listening(port: int) -> bool:
    """Anything listening on ``port``, any address (from /proc/net/tcp{,6})."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def _last_line(root: Path) -> str:
    log = root / "localstack.log"
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def _disk_usage(path: Path) -> int:
    done = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=False)
    return int(done.stdout.split()[0]) if done.returncode == 0 and done.stdout else 0
