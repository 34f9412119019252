"""The serial floor ``make bench`` compares login-etl with: the least any implementation does.

Per message: one ``json.loads``, two deterministic masks (``DeterministicMasker.mask``, value
by value, no cache), one COPY line; per batch: one ``COPY`` of those lines in one round trip
(``run_with_copy``, as the function sends its own; autocommitted, so no ledger, no transaction
of its own), then Postgres's own COPY time. No validation: a body that does not
parse, or lacks a key, is skipped. ``app_version`` is written as a constant, so the floor does
not even pay the version's encoding (it is stricter than a real minimum).

The same functions serve the timed run (``benchmark.py``) and the instruction count
(``instructions.py``), so both measure one floor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pg8000.native

from login_etl.adapters.postgres.connection import run_with_copy
from login_etl.adapters.postgres.schema import COLUMNS, TABLE
from login_etl.gc_pause import cyclic_gc_paused

COPY_ROWS = f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN"
NULL = "\\N"


@dataclass(frozen=True, slots=True)
class FloorTiming:
    """One batch through the floor: its Python part and its COPY, in seconds."""

    python_s: float
    copy_s: float

    @property
    def total_s(self) -> float:
        """What the batch cost end to end (the two parts ran one after the other)."""
        return self.python_s + self.copy_s


def parse(bodies: Sequence[str]) -> list[dict[str, Any]]:
    """``json.loads`` of every body; what does not parse to an object is skipped."""
    parsed = []
    for body in bodies:
        try:
            login = json.loads(body)
        except ValueError:
            continue
        if type(login) is dict:
            parsed.append(login)
    return parsed


def mask_pairs(
    logins: Sequence[dict[str, Any]], mask: Callable[[str], str]
) -> list[tuple[str, str] | None]:
    """The two masks of every login (the IP and the device id); None if one is missing."""
    pairs: list[tuple[str, str] | None] = []
    for login in logins:
        try:
            pairs.append((mask(str(login["ip"])), mask(str(login["device_id"]))))
        except KeyError:
            pairs.append(None)
    return pairs


def copy_lines(
    logins: Sequence[dict[str, Any]], masks: Sequence[tuple[str, str] | None], day: date
) -> list[str]:
    """One COPY text line per login; a login missing a key is skipped."""
    lines = []
    for login, pair in zip(logins, masks, strict=True):
        if pair is None:
            continue
        ip, device = pair
        try:
            locale = login["locale"] or NULL
            lines.append(
                f"{login['user_id']}\t{login['device_type']}\t{ip}\t{device}\t{locale}\t0\t{day}\n"
            )
        except KeyError:
            continue
    return lines


def payload(bodies: Sequence[str], mask: Callable[[str], str], day: date) -> bytes:
    """The floor's whole Python part, in one loop: what COPY receives."""
    lines = []
    for body in bodies:
        try:
            login = json.loads(body)
            ip = mask(str(login["ip"]))
            device = mask(str(login["device_id"]))
            locale = login["locale"] or NULL
            lines.append(
                f"{login['user_id']}\t{login['device_type']}\t{ip}\t{device}\t{locale}\t0\t{day}\n"
            )
        except (ValueError, KeyError, TypeError):
            continue  # not JSON, not an object, or a key missing: no row
    return "".join(lines).encode("utf-8")


def run_floor(
    conn: pg8000.native.Connection, bodies: Sequence[str], mask: Callable[[str], str], day: date
) -> FloorTiming:
    """One batch: the Python part, then the COPY, timed in the same call.

    With the cyclic GC paused, as the handler pauses it for a batch: the floor gets every
    advantage login-etl takes.
    """
    with cyclic_gc_paused():
        started = time.perf_counter()
        data = payload(bodies, mask, day)
        prepared = time.perf_counter()
        run_with_copy(conn, COPY_ROWS, [data])
        finished = time.perf_counter()
    return FloorTiming(prepared - started, finished - prepared)
