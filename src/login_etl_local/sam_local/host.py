"""The host's network state a container engine may change, read before and put back after.

Our ``dockerd`` runs with ``--iptables=false --ip-forward=false``, so it should change nothing
but add its bridges (``docker0``, the network we create) and the containers' veth pairs. This is
the safety net the CI machine needs all the same (it is shared, and the next job must find it as
it was): anything that differs after the engine stopped is put back and reported, so a run that
had to undo something says so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
)
# Interfaces an engine makes: its default bridge, user-defined bridges, container veth ends.
ENGINE_LINK = re.compile(r"^(docker0|br-[0-9a-f]{12}|veth[0-9a-f]+)$")
SAVE_TOOLS = {"iptables": "iptables-save", "ip6tables": "ip6tables-save"}
_PROC_SYS = Path("/proc/sys")
_SYS_NET = Path("/sys/class/net")


@dataclass(frozen=True)
class HostNetworkState:
    """Forwarding switches, network interfaces and packet-filter rules at one moment."""

    sysctls: dict[str, str]
    links: list[str]
    rules: dict[str, str] = field(default_factory=dict)  # "iptables" -> iptables-save output

    @classmethod
    def read(cls) -> HostNetworkState:
        """The current state (rules only for the tools installed)."""
        sysctls = {
            name: (_PROC_SYS / name).read_text().strip()
            for name in SYSCTLS
            if (_PROC_SYS / name).exists()
        }
        links = sorted(p.name for p in _SYS_NET.iterdir()) if _SYS_NET.is_dir() else []
        rules = {}
        for tool, save in SAVE_TOOLS.items():
            if shutil.which(save):
                saved = subprocess.run([save], capture_output=True, text=True, check=False)
                if saved.returncode == 0:
                    rules[tool] = saved.stdout
        return cls(sysctls, links, rules)

    def to_json(self) -> str:
        """For the file that lets the next run finish the cleanup of one that was killed."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> HostNetworkState:
        """The inverse of ``to_json``."""
        return cls(**json.loads(text))


def restore(before: HostNetworkState) -> list[str]:
    """Put back what changed since ``before``; what was undone, one phrase each (often none)."""
    now = HostNetworkState.read()
    undone = []
    for link in sorted(set(now.links) - set(before.links)):
        if ENGINE_LINK.match(link):
            subprocess.run(["ip", "link", "delete", link], capture_output=True, check=False)
            undone.append(f"removed interface {link}")
    for name, value in before.sysctls.items():
        if now.sysctls.get(name) != value:
            (_PROC_SYS / name).write_text(value + "\n")
            undone.append(f"{name.replace('/', '.')} back to {value}")
    for tool, saved in before.rules.items():
        current = now.rules.get(tool, "")
        if normalise_rules(current) != normalise_rules(saved):
            subprocess.run(
                [f"{tool}-restore"], input=restore_input(saved, current), text=True, check=True
            )
            undone.append(f"{tool} rules restored")
    return undone


def normalise_rules(saved: str) -> list[str]:
    """``iptables-save`` output without its comments and packet counters, for comparing."""
    lines = []
    for line in saved.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        lines.append(re.sub(r"\s*\[\d+:\d+\]$", "", line))
    return lines


def restore_input(before: str, now: str) -> str:
    """What ``iptables-restore`` needs to go from ``now`` back to ``before``.

    It flushes only the tables it is given: a table that exists now but did not before (an
    engine's ``nat``) is given back empty, its built-in chains accepting as on a fresh host.
    """
    before_tables = _tables(before)
    blocks = list(before_tables.values())
    for name, body in _tables(now).items():
        if name not in before_tables:
            chains = [
                re.sub(r"^:(\S+) \S+.*$", r":\1 ACCEPT [0:0]", line)
                for line in body
                if line.startswith(":") and line.split()[1] != "-"
            ]
            blocks.append([f"*{name}", *chains])
    return "".join("\n".join([*block, "COMMIT"]) + "\n" for block in blocks)


def _tables(saved: str) -> dict[str, list[str]]:
    """Table name -> its lines from ``*name`` up to (not including) ``COMMIT``."""
    tables: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in normalise_rules(saved):
        if line.startswith("*"):
            current = tables.setdefault(line[1:], [line])
        elif line == "COMMIT":
            current = None
        elif current is not None:
            current.append(line)
    return tables
