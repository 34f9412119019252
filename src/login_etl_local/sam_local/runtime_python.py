"""The CPython the stand-in Lambda image runs: the runtime's version, found on the host.

Lambda's ``python3.12`` runs CPython 3.12 from ``/var/lang``. Debian 12 ships 3.11 only and no
other interpreter can be downloaded here, so the image gets a copy of the host's own 3.12 build
(pyenv's, on our machines). It was built against the host's Debian libraries, which is why the
image's root filesystem is the host's Debian release and gets exactly the packages that provide
the libraries this interpreter and its extension modules link to (asked of ``ldd`` and ``dpkg``,
not listed by hand).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Not needed to run a function, large, or linking to X11 (Tk): left out of the image. The
# compiled ``__pycache__`` stays: every invoke is a new container that would recompile it.
LEFT_OUT = frozenset({"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "site-packages"})


class RuntimePythonError(RuntimeError):
    """No suitable interpreter; the message says what was looked for."""


@dataclass(frozen=True)
class RuntimePython:
    """A CPython installation with its own prefix (``bin/``, ``lib/``), e.g. pyenv's."""

    prefix: Path
    version: str  # "3.12"
    full_version: str  # "3.12.1"

    @property
    def executable(self) -> Path:
        return self.prefix / "bin" / f"python{self.version}"

    @property
    def stdlib(self) -> Path:
        return self.prefix / "lib" / f"python{self.version}"

    def copy_to(self, destination: Path) -> None:
        """The interpreter, its shared library and standard library, without tests and Tk."""

        def ignore(directory: str, names: list[str]) -> set[str]:
            skip = {n for n in names if n in LEFT_OUT or n.startswith("config-")}
            if Path(directory).name == "lib-dynload":
                skip |= {n for n in names if n.startswith("_tkinter")}
            return skip

        destination.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.prefix / "bin", destination / "bin", symlinks=True)
        shutil.copytree(self.prefix / "lib", destination / "lib", symlinks=True, ignore=ignore)
        (destination / "lib" / f"python{self.version}" / "site-packages").mkdir()

    def native_libraries(self) -> list[Path]:
        """The system libraries the interpreter and its kept extension modules load."""
        binaries = [self.executable]
        dynload = self.stdlib / "lib-dynload"
        binaries += [p for p in sorted(dynload.glob("*.so")) if not p.name.startswith("_tkinter")]
        found: set[Path] = set()
        for binary in binaries:
            listed = subprocess.run(
                ["ldd", str(binary)], capture_output=True, text=True, check=False
            )
            for line in listed.stdout.splitlines():
                if "not found" in line:
                    raise RuntimePythonError(f"{binary.name}: {line.strip()} on this host")
                match = re.search(r"=> (/\S+)", line)
                if match and not Path(match.group(1)).is_relative_to(self.prefix):
                    found.add(Path(match.group(1)))
        return sorted(found)

    def debian_packages(self) -> list[str]:
        """The Debian packages that provide ``native_libraries`` (``dpkg -S``)."""
        packages = set()
        for library in self.native_libraries():
            owner = _dpkg_owner(library)
            if owner is None:
                raise RuntimePythonError(
                    f"{library} (loaded by {self.executable}) belongs to no Debian package:"
                    " the image could not provide it"
                )
            packages.add(owner)
        return sorted(packages)


def find(version: str, explicit: str | None = None) -> RuntimePython:
    """The host's CPython ``version``: ``explicit`` prefix, pyenv's newest, or on ``PATH``."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    pyenv = sorted(
        (pyenv_root / "versions").glob(f"{version}.*"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.name.split(".")],
        reverse=True,
    )
    candidates += pyenv
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    for prefix in candidates:
        python = prefix / "bin" / f"python{version}"
        if prefix != Path("/usr") and python.exists() and (prefix / "lib").is_dir():
            full = subprocess.run(
                [str(python), "-c", "import platform; print(platform.python_version())"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            if full.startswith(f"{version}."):
                return RuntimePython(prefix, version, full)
    raise RuntimePythonError(
        f"no CPython {version} with its own prefix on this host (looked at LAMBDA_IMAGE_PYTHON,"
        f" {pyenv_root}/versions/{version}.*, python{version} on PATH): install one"
        f" (pyenv install {version}) or point LAMBDA_IMAGE_PYTHON at its prefix"
    )


def _dpkg_owner(library: Path) -> str | None:
    """The package owning ``library``; tries the merged-/usr spellings too."""
    real = library.resolve()
    spellings = {library, real}
    for path in list(spellings):
        text = str(path)
        spellings.add(Path(text.removeprefix("/usr")) if text.startswith("/usr/") else path)
        spellings.add(Path("/usr" + text) if not text.startswith("/usr/") else path)
    for path in sorted(spellings):
        owner = subprocess.run(
            ["dpkg", "-S", str(path)], capture_output=True, text=True, check=False
        )
        if owner.returncode == 0 and ":" in owner.stdout:
            return owner.stdout.split(":", 1)[0].strip()
    return None
