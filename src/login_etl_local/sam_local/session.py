"""One ``make test-sam-local`` run: prepare, hand over to ``tests/sam_local``, undo everything.

In order: a container engine (``engine``), the base image (``base_image``), ``sam build`` for
this machine's architecture, ``login-etl stack up`` in a directory of its own, the docker
network and the relay to the stack, the env-vars file samconfig names; then pytest on
``tests/sam_local``. Each step prints one line with what it did and how long it took; the way
out stops what was started in reverse order, whatever happened (Ctrl-C and SIGTERM included),
and says what it had to put back on the host.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from login_etl_local.sam_local import base_image, engine, runtime_python
from login_etl_local.sam_local.context import (
    CONTEXT_VARIABLE,
    FUNCTION,
    SAMCONFIG_ENV,
    SamLocalConfig,
    SamLocalContext,
)
from login_etl_local.sam_local.debian import codename
from login_etl_local.sam_local.relay import relays

STACK_VARIABLES = ("AWS_ENDPOINT_URL", "DATABASE_URL", "QUEUE_URL", "DLQ_URL")


@dataclass(frozen=True)
class Options:
    """What the make target passes."""

    root: Path
    sam: Path
    python_version: str
    cache_dir: Path
    run_dir: Path
    runtime_python: str | None
    pytest_args: list[str]


def default_cache_dir() -> Path:
    """Outside the work tree, so a fresh clone (CI) finds the image a previous run built."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "login-etl" / "sam-local"


def default_run_dir() -> Path:
    """A fixed place, so that a run can clean up after one that was killed."""
    return Path(tempfile.gettempdir()) / f"login-etl-sam-local-{os.getuid()}"


def say(message: str) -> None:
    print(f"sam-local: {message}", flush=True)


def run(options: Options) -> int:
    """The whole run; pytest's exit code."""
    options.run_dir.mkdir(parents=True, exist_ok=True)
    with (options.run_dir / "lock").open("w") as lock, contextlib.ExitStack() as undo:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another run holds {options.run_dir}/lock") from None
        started = time.monotonic()
        running = _engine(options, undo)
        architecture, wheel_machine = base_image.lambda_architecture()
        _image(options, running, architecture, wheel_machine)
        config = SamLocalConfig.load(options.root)
        _sam_build(options, architecture)
        host_environment = _stack(undo)
        gateway = _network(running, config.network, undo)
        aws, postgres = undo.enter_context(
            relays(gateway, [_port(host_environment["AWS_ENDPOINT_URL"]),
                             _port(host_environment["DATABASE_URL"])])
        )  # fmt: skip
        say(
            f"relay: {gateway}:{aws.listen_port} -> moto,"
            f" {gateway}:{postgres.listen_port} -> Postgres"
        )
        inside = container_environment(
            host_environment, gateway, aws.listen_port, postgres.listen_port
        )
        config.env_vars.parent.mkdir(parents=True, exist_ok=True)
        config.env_vars.write_text(json.dumps({FUNCTION: inside}, indent=2) + "\n")
        context_dir = Path(undo.enter_context(tempfile.TemporaryDirectory(prefix="sam-local-")))
        context = SamLocalContext(
            root=str(options.root),
            sam=str(options.sam),
            docker_host=running.docker_host,
            architecture=architecture,
            host_environment=host_environment,
            container_environment=inside,
            timings_file=str(context_dir / "timings.jsonl"),
        )
        context.save(context_dir / "context.json")
        say(f"ready in {time.monotonic() - started:.1f} s; sam local invoke on every event")
        tested = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/sam_local", "-v", "-p", "no:cacheprovider",
             *options.pytest_args],
            cwd=options.root,
            env={**os.environ, CONTEXT_VARIABLE: str(context_dir / "context.json")},
            check=False,
        )  # fmt: skip
        timings = Path(context.timings_file)
        for line in timings.read_text().splitlines() if timings.exists() else []:
            timing = json.loads(line)
            say(f"invoke {timing['event']}: {timing['seconds']:.1f} s")
        if running.ours:
            used = _disk_usage(options.cache_dir / "docker")
            say(f"engine data root (the cached images): {_megabytes(used)} MB on disk")
        return tested.returncode


def _engine(options: Options, undo: contextlib.ExitStack) -> engine.Engine:
    started = time.monotonic()
    leftover = engine.cleanup_killed_run(options.run_dir)
    if leftover:
        say(f"cleaned up after a killed run: {', '.join(leftover)}")
    running = engine.start_engine(options.run_dir, options.cache_dir / "docker")
    undo.callback(_stop_engine, running)
    how = "started dockerd" if running.ours else "using the running engine"
    installed = f" (installed {', '.join(running.installed)})" if running.installed else ""
    say(
        f"engine: {how} {running.version}, {running.storage_driver}{installed}"
        f" in {time.monotonic() - started:.1f} s"
    )
    return running


def _stop_engine(running: engine.Engine) -> None:
    if not running.ours:
        return
    # SAM removes its containers, except after some failures: ours to remove then.
    left = running.docker("ps", "--all", "--quiet", check=False).stdout.split()
    if left:
        running.docker("rm", "--force", *left, check=False)
    running.stop()
    undone = ", ".join(running.undone) if running.undone else "nothing"
    say(f"engine stopped; host network state checked, put back: {undone}")


def _image(options: Options, running: engine.Engine, architecture: str, machine: str) -> None:
    python = runtime_python.find(options.python_version, options.runtime_python)
    stand_in = base_image.StandIn(
        python=python,
        architecture=architecture,
        wheel_machine=machine,
        release=codename(),
        runtime_packages=(base_image.AWSLAMBDARIC, _pinned("boto3", options.root)),
    )
    result = base_image.ensure(running, stand_in, options.cache_dir / "work")
    say(
        f"image {result.tag}: {result.how} in {result.seconds:.1f} s,"
        f" {_megabytes(result.size_bytes)} MB (CPython {python.full_version} from {python.prefix})"
    )


def _sam_build(options: Options, architecture: str) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [str(options.sam), "build", "--config-env", SAMCONFIG_ENV,
         "--parameter-overrides", f"Architecture={architecture}"],
        cwd=options.root,
        env={**os.environ, "LAMBDA_ARCH": architecture, "SAM_CLI_TELEMETRY": "0"},
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"sam build failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    say(f"sam build for {architecture}: {time.monotonic() - started:.1f} s")


def _stack(undo: contextlib.ExitStack) -> dict[str, str]:
    """``login-etl stack up`` in a directory of its own (not a stack the user left running)."""
    started = time.monotonic()
    cli = str(Path(sys.executable).parent / "login-etl")
    where = Path(undo.enter_context(tempfile.TemporaryDirectory(prefix="sam-local-stack-")))
    clean = {k: v for k, v in os.environ.items() if k not in STACK_VARIABLES}

    def down() -> None:
        subprocess.run(
            [cli, "stack", "down"], cwd=where, env=clean, capture_output=True, check=False
        )

    undo.callback(down)
    up = subprocess.run(
        [cli, "stack", "up"], cwd=where, env=clean, capture_output=True, text=True, check=False
    )
    if up.returncode != 0:
        raise RuntimeError(f"login-etl stack up failed: {up.stderr.strip()[-500:]}")
    exported = parse_exports(up.stdout)
    say(f"stack: login-etl stack up in {time.monotonic() - started:.1f} s")
    return exported


def parse_exports(output: str) -> dict[str, str]:
    """The ``export NAME=value`` lines ``login-etl stack up`` prints."""
    found = {}
    for line in output.splitlines():
        match = re.fullmatch(r"export ([A-Z_][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    missing = {"AWS_ENDPOINT_URL", "AWS_REGION", "DATABASE_URL", "QUEUE_URL"} - set(found)
    if missing:
        raise RuntimeError(f"login-etl stack up did not print {', '.join(sorted(missing))}")
    return found


def container_environment(
    host: dict[str, str], gateway: str, aws_port: int, postgres_port: int
) -> dict[str, str]:
    """The function's variables inside the container: the same stack, through the relay."""
    return {
        "AWS_ENDPOINT_URL": moved(host["AWS_ENDPOINT_URL"], gateway, aws_port),
        "QUEUE_URL": moved(host["QUEUE_URL"], gateway, aws_port),
        "DATABASE_URL": moved(host["DATABASE_URL"], gateway, postgres_port),
        "DATA_KEY_PARAMETER": host.get("DATA_KEY_PARAMETER", "/login-etl/data-key"),
        "DB_SSLMODE": "disable",
        "POWERTOOLS_METRICS_NAMESPACE": "LoginEtlLocal",
    }


def moved(url: str, host: str, port: int) -> str:
    """``url`` with its host and port replaced, user, password and path kept."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _port(url: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise RuntimeError("the stack's URLs have no port")
    return port


def _network(running: engine.Engine, name: str, undo: contextlib.ExitStack) -> str:
    """The docker network samconfig names, made for this run; its gateway, on the host.

    In our own engine a network left by a killed run is replaced; in an engine we found
    running, an existing network is used and left alone.
    """
    exists = running.docker("network", "inspect", name, check=False).returncode == 0
    if exists and running.ours:
        running.docker("network", "rm", name)
    if running.ours or not exists:
        running.docker("network", "create", name)
        undo.callback(running.docker, "network", "rm", name, check=False)
    gateway = running.docker(
        "network", "inspect", name, "--format", "{{(index .IPAM.Config 0).Gateway}}"
    ).stdout.strip()
    if not gateway:
        raise RuntimeError(f"docker network {name} has no gateway address")
    return gateway


def _pinned(name: str, root: Path) -> str:
    """``name==version`` as requirements.txt pins it."""
    for line in (root / "requirements.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() == name:
            return line.split("#")[0].strip()
    raise RuntimeError(f"requirements.txt pins no {name}")


def _disk_usage(path: Path) -> int:
    done = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=False)
    return int(done.stdout.split()[0]) if done.returncode == 0 and done.stdout else 0


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.0f}"
