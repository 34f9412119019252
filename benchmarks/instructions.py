"""Instructions per message of the Python side, counted by ``valgrind --tool=callgrind``.

Wall-clock figures move 3x with the machine's load; the number of instructions a batch takes
does not (callgrind counts them, it does not time them, and the run is deterministic: fixed
bodies, fixed message ids, ``PYTHONHASHSEED=0``, empty tables). Postgres runs in its own
process, which valgrind does not follow: what is counted is exactly the function's side,
including pg8000's work on the socket.

A fresh interpreter runs under callgrind with ``--dump-before=getsid``; between phases it calls
``os.getsid(0)`` (nothing else here calls it), so each phase's instructions land in a dump of
their own. Phases: the floor's parts (``floor``: ``json.loads``, two masks, one COPY line,
and the three in one loop), then ``lambda_handler`` on batches of 10,000, 1,000 and 100
records, after a warm-up batch (cold start: imports, key, connection, schema).

``python -m benchmarks.instructions`` starts a local stack and prints the figures;
``make bench`` runs it on its own stack and records them (``docs/instructions.md`` keeps the
history).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

# The phases, in the order the inner run marks them, and what each one's count is divided by.
FLOOR_MESSAGES = 2_000  # per-message figures of the floor do not depend on the count
HANDLER_BATCHES = (10_000, 1_000, 100)
SEED = 16
_DAY = date(2026, 11, 25)
_TOTALS = re.compile(r"^totals:\s+(\d+)", re.MULTILINE)
_PART = re.compile(r"^part:\s+(\d+)", re.MULTILINE)


def mark() -> None:
    """The phase boundary: callgrind dumps its counters before every ``getsid`` call."""
    os.getsid(0)


def fixed_event(bodies: list[str], seed: int) -> dict[str, Any]:
    """An SQS event with message ids from a seeded generator: the same bytes on every run."""
    rng = random.Random(seed)  # noqa: S311 - repeatable ids, not secrets
    return {
        "Records": [
            {
                "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "receiptHandle": "bench",
                "body": body,
                "attributes": {"SentTimestamp": "1764028800000", "ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:login-queue",
                "awsRegion": "us-east-1",
            }
            for body in bodies
        ]
    }


def inner(floor_messages: int, batches: tuple[int, ...]) -> None:
    """What runs under callgrind: set up, warm up, then one marked phase after another."""
    import warnings  # noqa: PLC0415 - the whole inner run is what is measured

    from benchmarks import floor as bench_floor  # noqa: PLC0415
    from login_etl.adapters.postgres.connection import connect  # noqa: PLC0415
    from login_etl.config import Settings, connection_params_from_url  # noqa: PLC0415
    from login_etl.domain.masking import DeterministicMasker  # noqa: PLC0415
    from login_etl.handler import lambda_handler  # noqa: PLC0415
    from login_etl_cli.sample_data import generate  # noqa: PLC0415
    from login_etl_local.event_source_mapping import LocalContext  # noqa: PLC0415

    warnings.filterwarnings("ignore", message="No application metrics")
    bodies = generate(floor_messages, SEED, malformed_ratio=0.01)
    mask = DeterministicMasker(bytes(range(32))).mask
    events = [
        fixed_event(generate(size, SEED + size, malformed_ratio=0.01), size) for size in batches
    ]
    # Warm-up: the cold start, and every function of the floor once.
    lambda_handler(fixed_event(generate(10, SEED - 1), SEED - 1), LocalContext())
    bench_floor.payload(bodies[:20], mask, _DAY)
    admin = connect(connection_params_from_url(os.environ["DATABASE_URL"], Settings.from_env()))
    admin.run("TRUNCATE user_logins, login_etl_processed_messages")
    admin.close()

    parsed = bench_floor.parse(bodies)
    masks = bench_floor.mask_pairs(parsed, mask)
    floor: list[tuple[str, Callable[[], object]]] = [
        ("json.loads", lambda: bench_floor.parse(bodies)),
        ("two masks", lambda: bench_floor.mask_pairs(parsed, mask)),
        ("one COPY line", lambda: bench_floor.copy_lines(parsed, masks, _DAY)),
        ("the three, one loop", lambda: bench_floor.payload(bodies, mask, _DAY)),
    ]
    phases = [(f"floor: {name}", floor_messages, run) for name, run in floor]
    for size, event in zip(batches, events, strict=True):
        phases.append((f"handler: {size:,}-record batch", size, _invoke(lambda_handler, event)))
    mark()  # everything so far (start-up, imports, warm-up) is dump 1
    for _, _, run in phases:
        run()
        mark()
    print(json.dumps([[name, messages] for name, messages, _ in phases]))


def _invoke(
    handler: Callable[[dict[str, Any], Any], object], event: dict[str, Any]
) -> Callable[[], object]:
    from login_etl_local.event_source_mapping import LocalContext  # noqa: PLC0415

    context = LocalContext()
    return lambda: handler(event, context)


def count(
    env: dict[str, str],
    quick: bool = False,
    floor_messages: int | None = None,
    batches: tuple[int, ...] | None = None,
) -> dict[str, Any] | None:
    """Run the inner phases under callgrind: instructions per message (None without valgrind)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    floor_messages = floor_messages or (1_000 if quick else FLOOR_MESSAGES)
    batches = batches or ((1_000, 100) if quick else HANDLER_BATCHES)
    with tempfile.TemporaryDirectory(prefix="login-etl-callgrind-") as work:
        out = Path(work) / "callgrind.out"
        result = subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                "--dump-before=getsid",
                "--dump-instr=no",
                "--dump-line=no",
                sys.executable,
                "-m",
                "benchmarks.instructions",
                "--inner",
                "--floor-messages",
                str(floor_messages),
                "--batches",
                ",".join(map(str, batches)),
            ],
            env={**os.environ, **env, "PYTHONHASHSEED": "0"},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"the callgrind run failed:\n{result.stderr[-3000:]}")
        phases = json.loads(result.stdout.strip().splitlines()[-1])
        totals = dump_totals(Path(work))
    # Dump 1 is the start-up; dump k + 1 is phase k (the last file is the exit, after the end).
    if len(totals) < len(phases) + 1:
        raise RuntimeError(f"expected {len(phases) + 1} callgrind dumps, got {len(totals)}")
    figures = {
        name: round(totals[index + 2] / messages) for index, (name, messages) in enumerate(phases)
    }
    return {"instructions_per_message": figures, "startup_and_warm_up": totals[1]}


def dump_totals(directory: Path) -> dict[int, int]:
    """Part number -> total instructions, from callgrind's dump files in ``directory``."""
    parts = {}
    for path in directory.glob("callgrind.out*"):
        text = path.read_text(errors="replace")
        part, totals = _PART.search(text), _TOTALS.search(text)
        if part and totals:
            parts[int(part.group(1))] = int(totals.group(1))
    return parts


def render(figures: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    lines = ["| phase | instructions per message |", "|---|---:|"]
    for name, value in figures["instructions_per_message"].items():
        lines.append(f"| {name} | {value:,} |")
    return "\n".join(lines)


def main() -> int:
    """Standalone: start a local stack, count, print (``--json FILE`` to keep the figures)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--floor-messages", type=int, default=FLOOR_MESSAGES)
    parser.add_argument("--batches", default=",".join(map(str, HANDLER_BATCHES)))
    parser.add_argument("--quick", action="store_true", help="1,000 messages instead of 10,000")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args()
    if args.inner:
        inner(args.floor_messages, tuple(int(size) for size in args.batches.split(",")))
        return 0
    from login_etl_local.stack import local_stack  # noqa: PLC0415

    quiet = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}
    with local_stack() as stack:
        figures = count(
            {**stack.environment(), **quiet},
            args.quick,
            args.floor_messages,
            tuple(int(size) for size in args.batches.split(",")),
        )
    if figures is None:
        print("valgrind not found: install it (Debian: apt-get install valgrind)")
        return 1
    print(render(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
