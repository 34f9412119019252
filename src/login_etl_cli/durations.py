"""Durations as people write and read them: ``--older-than 10m``, "older than 3 min"."""

from __future__ import annotations

import argparse
import re

UNITS = {"s": 1, "m": 60, "min": 60, "h": 3_600, "d": 86_400}
_SHOWN = (("day", 86_400), ("h", 3_600), ("min", 60), ("s", 1))
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|min|m|h|d)?")


def duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``2h``, ``29d`` -> seconds (an argparse type)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (a positive number with s, m, h or d: 90s, 10m, 2h, 29d)"
        )
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def human(seconds: float) -> str:
    """``2505600`` -> "29 days", ``180`` -> "3 min", ``5400`` -> "1 h 30 min": two parts at most."""
    left = round(seconds)
    parts = []
    for name, size in _SHOWN:
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count} {name}{'s' if name == 'day' and count != 1 else ''}")
    return " ".join(parts[:2]) if parts else "0 s"
