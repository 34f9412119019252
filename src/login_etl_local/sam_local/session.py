"""One ``make test-sam-local`` run: prepare, hand over to ``tests/sam_local``, undo everything.

In order: a container engine (``engine``), the base image (``base_image``), LocalStack's venv
(``localstack``), ``sam build`` for this machine's architecture, the docker network, a
throwaway Postgres, LocalStack on loopback and that network's gateway, the queue, DLQ and keys
provisioned on it, the relay to Postgres, the env-vars file samconfig names; then pytest on
``tests/sam_local`` (``sam local invoke`` of every event, then ``sam deploy`` of the template to
that LocalStack and its checks). Each step prints one line with what it did and how long it
took; the way out stops what was started in reverse order, whatever happened (Ctrl-C and
SIGTERM included), and says what it had to put back on the host.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import boto3

from login_etl_local.postgres_server import PostgresServer
from login_etl_local.provisioning import provision
from login_etl_local.sam_local import base_image, engine, localstack, runtime_python
from login_etl_local.sam_local.context import (
    CONTEXT_VARIABLE,
    FUNCTION,
    SAMCONFIG_ENV,
    SamLocalConfig,
    SamLocalContext,
)
from login_etl_local.sam_local.debian import codename
from login_etl_local.sam_local.relay import relays
from login_etl_local.stack import LOCAL_VISIBILITY_TIMEOUT_S

REGION = "us-east-1"


@dataclass(frozen=True)
class Options:
    """What the make target passes."""

    root: Path
    sam: Path
    python_version: str
    cache_dir: Path
    run_dir: Path
    runtime_python: str | None
    localstack_python: str | None
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
        venv = _localstack_venv(options)
        config = SamLocalConfig.load(options.root)
        _sam_build(options, architecture, _wheelhouse(options, wheel_machine))
        gateway = _network(running, config.network, undo)
        database_url = _postgres(undo)
        aws = _localstack(venv, options, gateway, undo)
        host_environment = _provision(aws, database_url)
        [postgres] = undo.enter_context(relays(gateway, [_port(database_url)]))
        say(
            f"LocalStack on 127.0.0.1 and {gateway}, port {aws.port};"
            f" relay {gateway}:{postgres.listen_port} -> Postgres"
        )
        inside = container_environment(host_environment, gateway, aws.port, postgres.listen_port)
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
            localstack_environments_file=str(aws.environments_file),
        )
        context.save(context_dir / "context.json")
        say(
            f"ready in {time.monotonic() - started:.1f} s; sam local invoke on every event,"
            " then sam deploy to LocalStack"
        )
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
            say(f"{timing['step']}: {timing['seconds']:.1f} s")
        if running.ours:
            used = _disk_usage(options.cache_dir / "docker")
            say(f"engine data root (the cached images): {_megabytes(used)} MB on disk")
        return tested.returncode


def _engine(options: Options, undo: contextlib.ExitStack) -> engine.Engine:
    started = time.monotonic()
    leftover = localstack.stop_recorded(options.run_dir)
    leftover += engine.cleanup_killed_run(options.run_dir)
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


def _wheelhouse(options: Options, wheel_machine: str) -> Path:
    """The function's wheels for the runtime, downloaded once: the build then asks no index.

    Keyed by requirements.txt, the platform and the Python version; kept in the cache.
    """
    requirements = (options.root / "requirements.txt").read_bytes()
    platform = f"manylinux2014_{wheel_machine}"
    key = hashlib.sha256(requirements + platform.encode() + options.python_version.encode())
    wheels = options.cache_dir / "wheels" / key.hexdigest()[:16]
    if (wheels / ".complete").exists():
        return wheels
    started = time.monotonic()
    shutil.rmtree(wheels, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--dest", str(wheels), "--platform", platform, "--implementation", "cp",
         "--python-version", options.python_version, "--only-binary=:all:",
         "--requirement", str(options.root / "requirements.txt")],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"downloading the function's wheels failed: {done.stderr[-500:]}")
    (wheels / ".complete").touch()
    say(f"the function's wheels for {platform} downloaded in {time.monotonic() - started:.1f} s")
    return wheels


def _sam_build(options: Options, architecture: str, wheels: Path) -> None:
    started = time.monotonic()
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}  # no registry: the cache
    done = subprocess.run(
        [str(options.sam), "build", "--config-env", SAMCONFIG_ENV,
         "--parameter-overrides", f"Architecture={architecture}"],
        cwd=options.root,
        env={**os.environ, **offline, "LAMBDA_ARCH": architecture, "SAM_CLI_TELEMETRY": "0"},
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"sam build failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    say(f"sam build for {architecture}: {time.monotonic() - started:.1f} s")


def _localstack_venv(options: Options) -> Path:
    installed = localstack.ensure_venv(options.cache_dir, options.localstack_python)
    size = f", {_megabytes(installed.size_bytes)} MB" if installed.size_bytes else ""
    say(
        f"localstack-core {localstack.version()}: {installed.how} venv in"
        f" {installed.seconds:.1f} s{size}"
    )
    return installed.python


def _postgres(undo: contextlib.ExitStack) -> str:
    """A throwaway Postgres on loopback (the container reaches it through the relay)."""
    started = time.monotonic()
    server = PostgresServer.start()
    undo.callback(server.stop)
    say(f"Postgres on 127.0.0.1:{server.port} in {time.monotonic() - started:.1f} s")
    return server.url


def _localstack(
    python: Path, options: Options, gateway: str, undo: contextlib.ExitStack
) -> localstack.RunningLocalStack:
    started = time.monotonic()
    running = localstack.start(python, options.run_dir, gateway)

    def stop() -> None:
        stopping = time.monotonic()
        said = running.stop()
        localstack.forget(options.run_dir)
        how = "; ".join(said) if said else "nothing left running or listening"
        say(f"LocalStack stopped in {time.monotonic() - stopping:.1f} s: {how}")

    undo.callback(stop)
    say(f"LocalStack ready in {time.monotonic() - started:.1f} s")
    return running


def _provision(aws: localstack.RunningLocalStack, database_url: str) -> dict[str, str]:
    """Queue, DLQ, KMS key and data key on LocalStack, as ``login-etl stack up`` makes them."""
    started = time.monotonic()
    aws_session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - LocalStack takes any
        region_name=REGION,
    )
    made = provision(
        aws_session.client("sqs", endpoint_url=aws.endpoint_url),
        aws_session.client("kms", endpoint_url=aws.endpoint_url),
        aws_session.client("ssm", endpoint_url=aws.endpoint_url),
        visibility_timeout_s=LOCAL_VISIBILITY_TIMEOUT_S,
    )
    say(f"provisioned queue, DLQ, KMS key and data key in {time.monotonic() - started:.1f} s")
    return {
        "AWS_ENDPOINT_URL": aws.endpoint_url,
        "AWS_REGION": REGION,
        "DATABASE_URL": database_url,
        "QUEUE_URL": made.queue_url,
        "DLQ_URL": made.dlq_url,
        "DATA_KEY_PARAMETER": made.data_key_parameter,
    }


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
