"""What the Debian host offers: its release, its package mirror, ``apt-get install``.

The mirror is always the one the machine's apt sources name (``apt-get indextargets`` reads
both the one-line and the deb822 formats), never a hard-coded host: CI machines reach only the
mirror they are configured with.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


class DebianError(RuntimeError):
    """The host is not a Debian it can install packages on; the message says why."""


def codename(os_release: Path = Path("/etc/os-release")) -> str:
    """The host's release name (``bookworm``), from ``VERSION_CODENAME``."""
    if not os_release.exists():
        raise DebianError(f"{os_release} is missing: not a Debian host")
    for line in os_release.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME" and value.strip('"'):
            return value.strip('"')
    raise DebianError(f"no VERSION_CODENAME in {os_release}")


def mirror_for(release: str, index_targets: str) -> str:
    """The archive URL serving ``release``'s binary packages, from ``apt-get indextargets``.

    ``index_targets`` is the output of ``apt-get indextargets --format '$(SITE) $(RELEASE)
    $(TARGET_OF)'``: one line per index, e.g. ``http://deb.example.org/debian bookworm deb``.
    The suite's own line wins over ``-updates``/``-security`` lines.
    """
    for line in index_targets.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == release and parts[2] == "deb":
            return parts[0]
    raise DebianError(f"no apt source for {release} (main suite): cannot debootstrap it")


def host_mirror(release: str) -> str:
    """The host's mirror for ``release`` (after an ``apt-get update`` if apt knows none yet)."""
    for attempt in range(2):
        listed = subprocess.run(
            ["apt-get", "indextargets", "--format", "$(SITE) $(RELEASE) $(TARGET_OF)"],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            return mirror_for(release, listed.stdout)
        except DebianError:
            if attempt:
                raise
            apt_update()
    raise AssertionError("unreachable")


_UPDATED: list[bool] = []  # once per process: the lists do not change during a run


def apt_update() -> None:
    """``apt-get update``, once per process."""
    if not _UPDATED:
        _apt(["update", "-qq"])
        _UPDATED.append(True)


def ensure_commands(packages: dict[str, str]) -> list[str]:
    """Install the package of each missing command (``{"dockerd": "docker.io"}``); installed."""
    missing = sorted({pkg for cmd, pkg in packages.items() if shutil.which(cmd) is None})
    if missing:
        install(missing)
    return missing


def install(packages: list[str]) -> None:
    """``apt-get install --no-install-recommends``: root only, services not started."""
    if os.geteuid() != 0:
        raise DebianError(f"{' '.join(packages)} not installed, and only root can install them")
    if shutil.which("apt-get") is None:
        raise DebianError(f"{' '.join(packages)} not installed, and there is no apt-get")
    apt_update()
    _apt(["install", "-y", "-qq", "--no-install-recommends", *packages])


def _apt(arguments: list[str]) -> None:
    done = subprocess.run(
        ["apt-get", *arguments],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise DebianError(f"apt-get {arguments[0]} failed: {last[0]}")
