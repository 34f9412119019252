"""The Lambda Python base image, or a stand-in for it built here when no registry can be reached.

``sam local invoke`` runs a zip function in ``public.ecr.aws/lambda/python:<ver>-<arch>`` plus
its own emulator (``aws-lambda-rie``, added by SAM in an image of its own). CI reaches no
registry, so the tag is given to a stand-in that does what the real image does for a function:

- a Debian root filesystem (``debootstrap --variant=minbase`` of the host's release, from the
  host's mirror) with the libraries the interpreter needs (``runtime_python``);
- CPython ``<ver>`` in ``/var/lang``, ``awslambdaric`` and boto3 in ``/var/runtime`` (boto3 at
  the version ``requirements.txt`` pins: the function does not bundle it, the runtime provides
  it), compiled, and ``/var/runtime/bootstrap``, which RIE starts;
- the real image's environment (``LAMBDA_TASK_ROOT``, ``LD_LIBRARY_PATH``...) and module search
  order: ``/var/task`` first, then layers, then the runtime's packages.

Built once (about two minutes, mostly debootstrap) and kept in the engine's data root, labelled
with a key of everything it was built from, so a second run only checks the label. An image
under that tag without our label is a real one (pulled where a registry is reachable) and is
used as it is.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from login_etl_local.sam_local import debian
from login_etl_local.sam_local.engine import Engine
from login_etl_local.sam_local.runtime_python import RuntimePython

AWSLAMBDARIC = "awslambdaric==4.2.2"
LABEL = "org.login-etl.stand-in"
# The real image's environment, less the locale it has and Debian's minbase has not.
IMAGE_ENV = {
    "LANG": "C.UTF-8",
    "TZ": ":/etc/localtime",
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task"
    ":/var/task/lib:/opt/lib",
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
}
BOOTSTRAP = """#!/bin/sh
# Started by the runtime interface emulator (RIE), which sets _HANDLER and AWS_LAMBDA_RUNTIME_API.
export AWS_EXECUTION_ENV=AWS_Lambda_python{version}
exec /var/lang/bin/python{version} /var/runtime/bootstrap.py
"""
BOOTSTRAP_PY = '''"""The runtime's start: Lambda's module search order, then awslambdaric's loop."""

import os
import sys

del sys.path[0]  # this file's folder: /var/runtime comes after the function and its layers
sys.path[:0] = [
    os.environ.get("LAMBDA_TASK_ROOT", "/var/task"),
    "/opt/python/lib/python{version}/site-packages",
    "/opt/python",
    "/var/lang/lib/python{version}/site-packages",
    "/var/runtime",
]

from awslambdaric.__main__ import main  # noqa: E402

main([sys.argv[0], os.environ["_HANDLER"]])
'''
# Imported in the image once built: the interpreter is complete, the runtime importable.
SMOKE_TEST = (
    "import ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, decimal, json, sys;"
    "sys.path.append('/var/runtime'); import awslambdaric, boto3;"
    "print(sys.version.split()[0], boto3.__version__)"
)


def lambda_architecture() -> tuple[str, str]:
    """(Lambda's name, the wheel platform's name) of this machine: x86_64 or arm64/aarch64."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64", "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64", "aarch64"
    raise RuntimeError(f"Lambda runs x86_64 or arm64, not {machine}")


@dataclass(frozen=True)
class StandIn:
    """What a stand-in image is built from."""

    python: RuntimePython
    architecture: str  # Lambda's name: x86_64 or arm64
    wheel_machine: str  # x86_64 or aarch64
    release: str  # the host's Debian release
    runtime_packages: tuple[str, ...]  # pinned requirements for /var/runtime

    @property
    def tag(self) -> str:
        return f"public.ecr.aws/lambda/python:{self.python.version}-{self.architecture}"

    @property
    def sam_tag(self) -> str:
        """The image SAM derives from ours (RIE added); stale once ours changes."""
        return f"public.ecr.aws/lambda/python:{self.python.version}-rapid-{self.architecture}"

    def key(self) -> str:
        """Changes whenever anything the image is built from does, this recipe included."""
        parts = [
            Path(__file__).read_bytes(),
            str(self.python.prefix).encode(),
            self.python.full_version.encode(),
            self.architecture.encode(),
            self.release.encode(),
            *(p.encode() for p in self.runtime_packages),
        ]
        return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


@dataclass(frozen=True)
class ImageResult:
    """How the base image came to be there, and what it costs."""

    tag: str
    how: str  # "cached stand-in", "built stand-in", "real image"
    seconds: float
    size_bytes: int


def ensure(engine: Engine, stand_in: StandIn, work_dir: Path) -> ImageResult:
    """The base image under its tag: kept if current, else (re)built."""
    started = time.monotonic()
    inspected = engine.docker(
        "image",
        "inspect",
        stand_in.tag,
        "--format",
        f'{{{{index .Config.Labels "{LABEL}"}}}}',
        check=False,
    )
    if inspected.returncode == 0:
        label = inspected.stdout.strip()
        if label in ("", "<no value>"):
            return ImageResult(stand_in.tag, "real image", 0.0, _size(engine, stand_in.tag))
        if label == stand_in.key():
            seconds = time.monotonic() - started
            return ImageResult(
                stand_in.tag, "cached stand-in", seconds, _size(engine, stand_in.tag)
            )
    build(engine, stand_in, work_dir)
    seconds = time.monotonic() - started
    return ImageResult(stand_in.tag, "built stand-in", seconds, _size(engine, stand_in.tag))


def build(engine: Engine, stand_in: StandIn, work_dir: Path) -> None:
    """debootstrap, interpreter, runtime, bootstrap; ``docker import``; smoke test."""
    debian.ensure_commands({"debootstrap": "debootstrap"})
    rootfs = work_dir / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    try:
        _debootstrap(stand_in, rootfs)
        _add_runtime(stand_in, rootfs)
        _import(engine, stand_in, rootfs)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    engine.docker("image", "rm", "--force", stand_in.sam_tag, check=False)
    engine.docker("image", "prune", "--force", check=False)  # the replaced stand-in, if any
    smoke = engine.docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        f"/var/lang/bin/python{stand_in.python.version}",
        stand_in.tag,
        "-c",
        SMOKE_TEST,
        check=False,
    )
    if smoke.returncode != 0:
        engine.docker("image", "rm", "--force", stand_in.tag, check=False)
        last = (smoke.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the stand-in image does not run Python: {last}")


def _debootstrap(stand_in: StandIn, rootfs: Path) -> None:
    mirror = debian.host_mirror(stand_in.release)
    packages = stand_in.python.debian_packages()
    done = subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(packages)}",
            stand_in.release,
            str(rootfs),
            mirror,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"debootstrap {stand_in.release} from {mirror} failed: {last[0]}")
    for unneeded in (
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
    ):
        shutil.rmtree(rootfs / unneeded, ignore_errors=True)


def _add_runtime(stand_in: StandIn, rootfs: Path) -> None:
    version = stand_in.python.version
    stand_in.python.copy_to(rootfs / "var" / "lang")
    runtime = rootfs / "var" / "runtime"
    for directory in ("var/task", "opt"):
        (rootfs / directory).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--target",
            str(runtime),
            "--platform",
            f"manylinux2014_{stand_in.wheel_machine}",
            "--implementation",
            "cp",
            "--python-version",
            version,
            "--only-binary=:all:",
            *stand_in.runtime_packages,
        ],
        check=True,
    )
    (runtime / "bootstrap").write_text(BOOTSTRAP.format(version=version))
    (runtime / "bootstrap").chmod(0o755)
    (runtime / "bootstrap.py").write_text(BOOTSTRAP_PY.format(version=version))
    # Compiled once here with the image's own interpreter, not at every cold start.
    subprocess.run(
        [
            "chroot",
            str(rootfs),
            f"/var/lang/bin/python{version}",
            "-m",
            "compileall",
            "-q",
            "/var/runtime",
        ],
        env={**os.environ, "LD_LIBRARY_PATH": IMAGE_ENV["LD_LIBRARY_PATH"]},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _import(engine: Engine, stand_in: StandIn, rootfs: Path) -> None:
    changes = [f"ENV {name}={value}" for name, value in IMAGE_ENV.items()]
    changes += ["WORKDIR /var/task", f"LABEL {LABEL}={stand_in.key()}"]
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
    )
    arguments = [a for change in changes for a in ("--change", change)]
    imported = subprocess.run(
        ["docker", "import", *arguments, "-", stand_in.tag],
        stdin=tar.stdout,
        env={**os.environ, **engine.environment()},
        capture_output=True,
        text=True,
        check=False,
    )
    assert tar.stdout is not None
    tar.stdout.close()
    if tar.wait() != 0 or imported.returncode != 0:
        raise RuntimeError(f"docker import failed: {imported.stderr.strip()[-300:]}")


def _size(engine: Engine, tag: str) -> int:
    done = engine.docker("image", "inspect", tag, "--format", "{{.Size}}", check=False)
    return int(done.stdout.strip() or 0)
