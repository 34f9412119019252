"""``make bench``: what login-etl costs a Lambda user, against the serial floor and a typical
handler, from one interleaved run.

The headline is cost, not speed: Lambda bills an invocation's duration, and at up to one vCPU
(1,769 MB) a CPU-bound function's duration is its CPU time. So every call is measured on
three clocks (``cpu.py``):

* **function CPU**: ``time.thread_time()`` of the calling thread (the function is
  single-threaded; moto and Postgres are processes of their own; the rest of this process's
  CPU during the call is measured too, and stays near zero);
* **Postgres CPU**: the CPU time of every process of the throwaway server (postmaster and
  children, rescanned each round), from ``/proc/<pid>/schedstat``, before and after the call;
* **wall-clock time** (secondary: it moves with the load of a shared machine).

For SQS batches of 10, 100, 1,000 records and the largest batch whose event fits Lambda's 6 MB
invocation payload (``payload.py``), the contenders take turns (A B C, then B C A, ...) on the
same bodies (generated: repeated devices and IPs, 1 % malformed, fresh for every round) and the
same Postgres:

- **floor** (``floor.py``): ``json.loads``, two deterministic masks and one COPY line per
  message, then one COPY;
- **typical**: Powertools ``BatchProcessor``, ``Fernet.encrypt``, one INSERT per record
  (``typical_handler.py``); slow, so it runs in fewer rounds, spread over the run;
- **login-etl**: ``login_etl.handler.lambda_handler``.

The report gives, per batch size and contender, CPU-ms per 1,000 messages (function and
Postgres apart), medians with their interquartile range, the per-round ratios, and
GB-seconds per million messages at 512 MB and 1,769 MB under ``cost.py``'s model: an
invocation lasts its function CPU ÷ its vCPU share (min(1, memory / 1,769 MB)) plus
Postgres's CPU (the wait on Postgres: a lower bound, no network latency), rounded up to 1 ms;
GB-s = duration x memory / 1,024 MB. Then, in fresh interpreters (``startup.py``), the cold
start against a bare ``import boto3`` and the first response against the typical handler's,
the import time by package, the peak RSS of the largest batch; and the instructions per
message under callgrind (``instructions.py``).

A run writes to ``RESULTS_DIR`` (untracked); ``--record`` writes to ``docs/`` instead, and
puts the table in ``docs/benchmarks.md`` (``report.record_in_docs``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import sys
import threading
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any

import boto3
import pg8000.native

from benchmarks import instructions as bench_instructions
from benchmarks import report
from benchmarks.cost import MEMORY_SIZES_MB, cpu_ms_per_thousand, gb_s_per_million
from benchmarks.cpu import CallCost, CallMeter, TreeMeter, parent_pid
from benchmarks.floor import run_floor
from benchmarks.payload import PAYLOAD_LIMIT_BYTES, estimate, event_bytes, largest_batch
from benchmarks.probe import sqs_event
from benchmarks.startup import artifact_size, cold_start, import_times, peak_rss
from benchmarks.stats import spread
from benchmarks.typical_handler import make_typical_handler
from login_etl.adapters.config_stores import read_parameter
from login_etl.adapters.postgres.connection import connect
from login_etl.config import KMS_ENCRYPTION_CONTEXT, Settings, connection_params_from_url
from login_etl.domain.masking import DeterministicMasker
from login_etl_cli.sample_data import generate
from login_etl_local.event_source_mapping import LocalContext
from login_etl_local.stack import local_stack
from login_etl_local.stack_record import patched_environ

ROOT = Path(__file__).resolve().parents[1]
# Where a run writes its results: untracked. `--record` writes to RECORD_DIR (tracked) instead.
RESULTS_DIR = ROOT / ".bench"
RECORD_DIR = ROOT / "docs"
FIXED_BATCH_SIZES = (10, 100, 1_000)  # then the largest that fits 6 MB (computed)
MESSAGES_PER_SIZE = 100_000  # rounds = this / batch size, between MIN_ROUNDS and 300
TYPICAL_MESSAGES_PER_SIZE = 10_000  # one INSERT per record: the slow one gets fewer rounds
# A round of one contender moved 10 -> 24 µs a message on this shared machine: 7 rounds at
# 10,000 records left the median ratio to the noise (0.91 to 1.08 on the same code). 21 cost
# about 10 s more.
MIN_ROUNDS = 21
QUICK_MIN_ROUNDS = 5
CONTENDERS = ("floor", "login_etl", "typical")
SAM_ARTIFACT = ROOT / ".aws-sam" / "build" / "LoginEtlFunction"
QUIET = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}
MALFORMED = 0.01
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
Contender = Callable[[list[str]], CallCost]


def rounds_for(size: int, budget: int, least: int = MIN_ROUNDS) -> int:
    """How many rounds a batch size gets: ``budget`` messages, within [least, 300]."""
    return max(least, min(300, budget // size))


def turn_order(round_: int) -> tuple[str, ...]:
    """A B C, B C A, C A B, ...: no contender always runs first (or right after the slow one)."""
    shift = round_ % len(CONTENDERS)
    return CONTENDERS[shift:] + CONTENDERS[:shift]


def typical_rounds(rounds: int, wanted: int) -> set[int]:
    """The rounds the typical handler takes part in, spread evenly over the run."""
    wanted = min(rounds, wanted)
    return {i * rounds // wanted for i in range(wanted)}


def round_bodies(slot: int, round_: int, size: int) -> list[str]:
    """The bodies of one round of one batch size (``slot``: its place in the run), fresh for
    every round; a longer batch of the same slot and round starts with the same bodies."""
    return generate(size, 1_000_000 * (slot + 1) + round_, malformed_ratio=MALFORMED)


def payload_batch_size(slot: int, rounds: int) -> int:
    """The largest batch whose event fits 6 MB, for the bodies of every round of ``slot``."""
    cap = int(estimate(round_bodies(slot, 0, 1_000)) * 1.1)
    return largest_batch(round_bodies(slot, round_, cap) for round_ in range(rounds))


def invoke(handler: Handler, meter: TreeMeter) -> Contender:
    """A contender that calls a handler; the event is built before the clocks start."""

    def run(bodies: list[str]) -> CallCost:
        event, context = sqs_event(bodies), LocalContext()
        with CallMeter(meter) as call:
            handler(event, context)
        return call.cost

    return run


def measure_size(
    slot: int,
    size: int,
    *,
    rounds: int,
    with_typical: set[int],
    run: dict[str, Contender],
    postgres: TreeMeter,
    floor_parts: Callable[[], dict[str, float]],
    payload_row: bool = False,
) -> dict[str, Any]:
    """Interleaved rounds for one batch size: each contender's costs, the paired ratios.

    ``payload_row``: the batch is the largest that fits 6 MB; every round's event is measured.
    """
    calls: dict[str, list[CallCost]] = defaultdict(list)
    parts: dict[str, list[float]] = defaultdict(list)
    largest_event = 0
    for round_ in range(rounds):
        bodies = round_bodies(slot, round_, size)
        if payload_row:
            largest_event = max(largest_event, event_bytes(bodies))
        postgres.rescan()  # autovacuum workers come and go
        for name in turn_order(round_):
            if name == "typical" and round_ not in with_typical:
                continue
            calls[name].append(run[name](bodies))
            if name == "floor":
                for part, value in floor_parts().items():
                    parts[part].append(value / size * 1e6)
    row = summarize(size, rounds, calls, with_typical)
    row["floor_us_per_message"] = {name: spread(values) for name, values in parts.items()}
    if largest_event:
        row["largest_event_bytes"] = largest_event
    return row


def summarize(
    size: int, rounds: int, calls: dict[str, list[CallCost]], with_typical: set[int]
) -> dict[str, Any]:
    """Per contender: CPU-ms per 1,000 messages, GB-s per million, msg/s; paired ratios."""

    def per_call(name: str, figure: Callable[[CallCost], float]) -> list[float]:
        return [figure(call) for call in calls[name]]

    def gb_s(memory: int) -> Callable[[CallCost], float]:
        return lambda c: gb_s_per_million(c.function_cpu_s, c.postgres_cpu_s, size, memory)

    figures: dict[str, Callable[[CallCost], float]] = {
        "function_cpu_ms_per_1000": lambda c: cpu_ms_per_thousand(c.function_cpu_s, size),
        "postgres_cpu_ms_per_1000": lambda c: cpu_ms_per_thousand(c.postgres_cpu_s, size),
        "other_threads_cpu_ms_per_1000": lambda c: cpu_ms_per_thousand(c.other_threads_cpu_s, size),
        "messages_per_s": lambda c: size / c.wall_s,
        **{f"gb_s_per_million_{memory}mb": gb_s(memory) for memory in MEMORY_SIZES_MB},
    }
    row: dict[str, Any] = {
        "batch_size": size,
        "rounds": rounds,
        "typical_rounds": len(calls["typical"]),
    }
    for key, figure in figures.items():
        row[key] = {name: spread(per_call(name, figure)) for name in CONTENDERS}
    # Ratios within a round: the load of that moment moves both sides alike.
    floor, ours = calls["floor"], calls["login_etl"]
    typical_ours = [call for index, call in enumerate(ours) if index in with_typical]
    gb_512 = gb_s(MEMORY_SIZES_MB[0])
    row["ratios"] = {
        "login_etl/floor function CPU": spread(
            [o.function_cpu_s / f.function_cpu_s for o, f in zip(ours, floor, strict=True)]
        ),
        "login_etl/floor GB-s 512 MB": spread(
            [gb_512(o) / gb_512(f) for o, f in zip(ours, floor, strict=True)]
        ),
        "typical/login_etl function CPU": spread(
            [
                t.function_cpu_s / o.function_cpu_s
                for t, o in zip(calls["typical"], typical_ours, strict=True)
            ]
        ),
        "typical/login_etl GB-s 512 MB": spread(
            [gb_512(t) / gb_512(o) for t, o in zip(calls["typical"], typical_ours, strict=True)]
        ),
    }
    row["calls"] = {
        name: [
            [c.function_cpu_s, c.postgres_cpu_s, c.other_threads_cpu_s, c.wall_s]
            for c in calls[name]
        ]
        for name in CONTENDERS
    }
    return row


def machine(conn: pg8000.native.Connection) -> dict[str, Any]:
    versions = {
        name: metadata.version(name)
        for name in ("aws-lambda-powertools", "boto3", "cryptography", "pg8000", "moto")
    }
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "postgres": conn.run("SHOW server_version")[0][0],
        "packages": versions,
        "load_average_at_start": os.getloadavg(),
    }


def run_benchmark(quick: bool = False, instructions: bool = True) -> dict[str, Any]:
    """Measure everything on one local stack; return the results."""
    budget = 3_000 if quick else MESSAGES_PER_SIZE
    typical_budget = 1_000 if quick else TYPICAL_MESSAGES_PER_SIZE
    least = QUICK_MIN_ROUNDS if quick else MIN_ROUNDS
    with local_stack() as stack, patched_environ({**stack.environment(), **QUIET}):
        from login_etl.handler import lambda_handler  # noqa: PLC0415 - after the env is set

        conn = connect(connection_params_from_url(stack.database_url, Settings.from_env()))
        results: dict[str, Any] = {"machine": machine(conn)}
        postgres = TreeMeter(parent_pid(conn.run("SELECT pg_backend_pid()")[0][0]))
        blob = read_parameter(boto3.client("ssm"), stack.provisioned.data_key_parameter)
        key = boto3.client("kms").decrypt(
            CiphertextBlob=base64.b64decode(blob), EncryptionContext=KMS_ENCRYPTION_CONTEXT
        )["Plaintext"]
        mask = DeterministicMasker(key).mask  # the function's key, without its cache
        lambda_handler(sqs_event(generate(10, 1)), LocalContext())  # schema and key, warm
        typical = make_typical_handler(conn, base64.urlsafe_b64encode(key))
        # What else runs in this process (moto and Postgres are child processes): listed,
        # and their CPU during each call measured apart ("other threads").
        results["threads_in_process"] = [thread.name for thread in threading.enumerate()]
        day = date.today()
        last_floor: dict[str, float] = {}

        def floor(bodies: list[str]) -> CallCost:
            with CallMeter(postgres) as call:
                timing = run_floor(conn, bodies, mask, day)
            last_floor.update(python=timing.python_s, copy=timing.copy_s)
            return call.cost

        run = {
            "floor": floor,
            "login_etl": invoke(lambda_handler, postgres),
            "typical": invoke(typical, postgres),
        }
        largest_slot = len(FIXED_BATCH_SIZES)
        largest = payload_batch_size(largest_slot, least)
        results["payload"] = {"limit_bytes": PAYLOAD_LIMIT_BYTES, "largest_batch": largest}
        print(report.render_payload(results["payload"]), flush=True)
        rows = []
        for slot, size in enumerate((*FIXED_BATCH_SIZES, largest)):
            conn.run("TRUNCATE user_logins, login_etl_processed_messages")
            rounds = rounds_for(size, budget, least)
            wanted = max(3 if quick else 5, typical_budget // size)
            row = measure_size(
                slot,
                size,
                rounds=rounds,
                with_typical=typical_rounds(rounds, wanted),
                run=run,
                postgres=postgres,
                floor_parts=lambda: dict(last_floor),
                payload_row=slot == largest_slot,
            )
            rows.append(row)
            print(report.render_size(row), flush=True)
        results["cost"] = rows
        results["payload"]["largest_event_bytes"] = rows[-1]["largest_event_bytes"]
        print("cold start and first responses in fresh interpreters ...", flush=True)
        results["cold_start"] = cold_start(runs=3 if quick else 7)
        results["import_ms_by_package"] = import_times(runs=1 if quick else 3)
        results["peak_rss_mb"] = peak_rss(largest, runs=1 if quick else 3)
        results["artifact"] = artifact_size(SAM_ARTIFACT)
        conn.run("TRUNCATE user_logins, login_etl_processed_messages")
        conn.close()
        if instructions:
            print("counting instructions under callgrind (a few minutes) ...", flush=True)
            results["instructions"] = bench_instructions.count(
                {**stack.environment(), **QUIET}, quick
            )
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["quick"] = quick
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``make bench`` (``ARGS="--quick"`` for a fast smoke run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, a smoke run")
    parser.add_argument(
        "--record",
        action="store_true",
        help=f"write to {RECORD_DIR} (tracked) instead, the table into docs/benchmarks.md",
    )
    parser.add_argument("--out", type=Path, help=f"where to write (default {RESULTS_DIR})")
    parser.add_argument("--no-instructions", action="store_true", help="skip callgrind")
    args = parser.parse_args(argv)
    out_dir = args.out or (RECORD_DIR if args.record else RESULTS_DIR)
    # Metrics are disabled for the run; Powertools still warns on every invocation.
    warnings.filterwarnings("ignore", message="No application metrics")
    print("benchmark: starting a local stack (moto server + throwaway PostgreSQL) ...")
    results = run_benchmark(args.quick, instructions=not args.no_instructions)
    given = list(sys.argv[1:] if argv is None else argv)
    results["command"] = "make bench" + (f' ARGS="{" ".join(given)}"' if given else "")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "benchmark.json").write_text(json.dumps(results, indent=2) + "\n")
    written = ["benchmark.json"]
    if results.get("instructions"):
        (out_dir / "instructions.json").write_text(
            json.dumps(results["instructions"], indent=2) + "\n"
        )
        written.append("instructions.json")
    if report.draw_chart(results, out_dir / "benchmark.png"):
        written.append("benchmark.png")
    if args.record:
        report.record_in_docs(results, RECORD_DIR / "benchmarks.md")
        written.append("the table in benchmarks.md")
    print()
    print(report.render_table(results))
    print(f"\nwrote {', '.join(written)} in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
