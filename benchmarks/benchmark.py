"""``make bench``: login-etl against the serial floor and a typical handler, in one run.

Absolute figures move 3x between machines and with the load of a shared one, so everything is
measured so that the load moves all contenders alike, and compared by ratios:

* **throughput**: for SQS batches of 10, 100, 1,000 and 10,000 records, the contenders take turns
  (A B C, then B C A, ...) on the same bodies (generated: repeated devices and IPs, 1 %
  malformed, fresh for every round) and the same Postgres. Each round gives each contender's
  time and the ratios between them; the report gives medians with their interquartile range
  and min-max, and the median of the per-round ratios. The contenders:

  - **floor** (``floor``): ``json.loads``, two deterministic masks and one COPY line per
    message, then one COPY, Postgres's own time included, timed end to end in the same call;
  - **typical**: Powertools ``BatchProcessor``, ``Fernet.encrypt``, one INSERT per record
    (``typical_handler.py``); slow, so it runs in fewer rounds, spread over the run;
  - **login-etl**: ``login_etl.handler.lambda_handler``.

* **instructions per message** of the Python side (``instructions``, callgrind): the
  figure that does not depend on the load at all;
* **cold start** in fresh interpreters, next to a bare ``import boto3`` measured in the same
  run (turn about), and the import time of each top-level dependency (``python -X importtime``);
* **peak RSS** of a 10,000-record batch in a fresh interpreter (``probe.py``).

A run writes to ``RESULTS_DIR`` (untracked); ``--record`` writes to ``docs/`` instead.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
import zipfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date
from importlib import metadata
from io import BytesIO
from pathlib import Path
from typing import Any

import boto3
import pg8000.native

from benchmarks import instructions as bench_instructions
from benchmarks.floor import run_floor
from benchmarks.probe import sqs_event
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
BATCH_SIZES = (10, 100, 1_000, 10_000)
MESSAGES_PER_SIZE = 30_000  # rounds = this / batch size, between MIN_ROUNDS and 300
TYPICAL_MESSAGES_PER_SIZE = 10_000  # one INSERT per record: the slow one gets fewer rounds
# A round of one contender moved 10 -> 24 µs a message on this shared machine: 7 rounds at
# 10,000 records left the median ratio to the noise (0.91 to 1.08 on the same code). 21 cost
# about 10 s more.
MIN_ROUNDS = 21
CONTENDERS = ("floor", "login_etl", "typical")
SAM_ARTIFACT = ROOT / ".aws-sam" / "build" / "LoginEtlFunction"
QUIET = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}
BOTO3_PROBE = (
    "import time; started = time.perf_counter(); import boto3; import json;"
    " print(json.dumps({'import_ms': (time.perf_counter() - started) * 1000}))"
)
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def rounds_for(size: int, budget: int) -> int:
    """How many rounds a batch size gets: ``budget`` messages, within [MIN_ROUNDS, 300]."""
    return max(MIN_ROUNDS, min(300, budget // size))


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles and extremes of some measurements."""
    ordered = sorted(values)
    if len(ordered) == 1:
        q1 = q3 = ordered[0]
    else:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return {
        "median": statistics.median(ordered),
        "q1": q1,
        "q3": q3,
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
    }


def turn_order(round_: int) -> tuple[str, ...]:
    """A B C, B C A, C A B, ...: no contender always runs first (or right after the slow one)."""
    shift = round_ % len(CONTENDERS)
    return CONTENDERS[shift:] + CONTENDERS[:shift]


def typical_rounds(rounds: int, wanted: int) -> set[int]:
    """The rounds the typical handler takes part in, spread evenly over the run."""
    wanted = min(rounds, wanted)
    return {i * rounds // wanted for i in range(wanted)}


def time_handler(handler: Handler, bodies: list[str]) -> float:
    """Seconds for one invocation (the event is built before the clock starts)."""
    event, context = sqs_event(bodies), LocalContext()
    started = time.perf_counter()
    handler(event, context)
    return time.perf_counter() - started


def measure_size(
    size: int,
    rounds: int,
    with_typical: set[int],
    run: dict[str, Callable[[list[str]], float]],
    floor_parts: Callable[[], dict[str, float]],
) -> dict[str, Any]:
    """Interleaved rounds for one batch size: messages/s of each contender, paired ratios."""
    seconds: dict[str, list[float]] = defaultdict(list)
    ratios: dict[str, list[float]] = defaultdict(list)
    parts: dict[str, list[float]] = defaultdict(list)
    for round_ in range(rounds):
        bodies = generate(size, 1_000_000 * size + round_, malformed_ratio=0.01)
        took = {}
        for name in turn_order(round_):
            if name == "typical" and round_ not in with_typical:
                continue
            took[name] = run[name](bodies)
            if name == "floor":
                for part, value in floor_parts().items():
                    parts[part].append(value / size * 1e6)
        for name, value in took.items():
            seconds[name].append(value)
        # Ratios of throughputs within one round: the load of that moment cancels out.
        ratios["login_etl/floor"].append(took["floor"] / took["login_etl"])
        if "typical" in took:
            ratios["login_etl/typical"].append(took["typical"] / took["login_etl"])
    return {
        "batch_size": size,
        "rounds": rounds,
        "messages_per_s": {
            name: spread([size / s for s in values]) for name, values in seconds.items()
        },
        "ratios": {name: spread(values) for name, values in ratios.items()},
        "floor_us_per_message": {name: spread(values) for name, values in parts.items()},
    }


def probe(mode: str, runs: int) -> list[dict[str, float]]:
    """Fresh interpreters running ``probe`` (cold start or peak memory)."""
    return [_fresh_python(["-m", "benchmarks.probe", mode]) for _ in range(runs)]


def _fresh_python(arguments: list[str]) -> dict[str, float]:
    started = time.perf_counter()
    output = subprocess.run(
        [sys.executable, *arguments], capture_output=True, text=True, check=True
    ).stdout
    figures: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    figures["process_ms"] = (time.perf_counter() - started) * 1000
    return figures


def cold_start(runs: int) -> dict[str, Any]:
    """The handler's cold start and a bare ``import boto3``, turn about, with paired ratios."""
    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        bare = _fresh_python(["-c", BOTO3_PROBE])
        cold = _fresh_python(["-m", "benchmarks.probe", "cold"])
        for name in ("import_ms", "first_response_ms", "process_ms"):
            samples[name].append(cold[name])
        samples["boto3_import_ms"].append(bare["import_ms"])
        samples["boto3_process_ms"].append(bare["process_ms"])
        samples["import / boto3 import"].append(cold["import_ms"] / bare["import_ms"])
        samples["first response / boto3 import"].append(
            cold["first_response_ms"] / bare["import_ms"]
        )
        samples["process / boto3 process"].append(cold["process_ms"] / bare["process_ms"])
    return {name: spread(values) for name, values in samples.items()}


def import_times(runs: int) -> dict[str, float]:
    """Median ms of ``import login_etl.handler`` by top-level package (``-X importtime``).

    Each module's own ("self") time goes to its top-level package, so the figures add up to the
    whole import; the standard library is one line.
    """
    totals: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        stderr = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import login_etl.handler"],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        for name, ms in by_top_level(stderr).items():
            totals[name].append(ms)
    medians = {name: statistics.median(values) for name, values in totals.items()}
    return dict(sorted(medians.items(), key=lambda item: -item[1]))


def by_top_level(importtime_output: str) -> dict[str, float]:
    """``-X importtime`` lines -> ms of self time per top-level package ("stdlib" grouped)."""
    result: dict[str, float] = defaultdict(float)
    for line in importtime_output.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, _, name = line.removeprefix("import time:").split("|")
        top = name.strip().split(".")[0]
        key = "stdlib" if top in sys.stdlib_module_names or top.startswith("_") else top
        result[key] += int(self_us) / 1000
    result["total"] = sum(result.values())
    return dict(result)


def artifact_size() -> dict[str, float] | None:
    """Bytes of the SAM-built function, unzipped and zipped (None before `make build`)."""
    if not (SAM_ARTIFACT / "login_etl").is_dir():
        return None
    buffer = BytesIO()
    unzipped = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(SAM_ARTIFACT.rglob("*")):
            if path.is_file():
                unzipped += path.stat().st_size
                archive.write(path, path.relative_to(SAM_ARTIFACT))
    return {"unzipped_mb": unzipped / 1e6, "zipped_mb": len(buffer.getvalue()) / 1e6}


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
    with local_stack() as stack, patched_environ({**stack.environment(), **QUIET}):
        from login_etl.handler import lambda_handler  # noqa: PLC0415 - after the env is set

        conn = connect(connection_params_from_url(stack.database_url, Settings.from_env()))
        blob = read_parameter(boto3.client("ssm"), stack.provisioned.data_key_parameter)
        key = boto3.client("kms").decrypt(
            CiphertextBlob=base64.b64decode(blob), EncryptionContext=KMS_ENCRYPTION_CONTEXT
        )["Plaintext"]
        mask = DeterministicMasker(key).mask  # the function's key, without its cache
        lambda_handler(sqs_event(generate(10, 1)), LocalContext())  # schema and key, warm
        typical = make_typical_handler(conn, base64.urlsafe_b64encode(key))
        day = date.today()
        last_floor: dict[str, float] = {}

        def floor(bodies: list[str]) -> float:
            timing = run_floor(conn, bodies, mask, day)
            last_floor.update(python=timing.python_s, copy=timing.copy_s)
            return timing.total_s

        run = {
            "floor": floor,
            "login_etl": lambda bodies: time_handler(lambda_handler, bodies),
            "typical": lambda bodies: time_handler(typical, bodies),
        }
        throughput = []
        for size in BATCH_SIZES:
            conn.run("TRUNCATE user_logins, login_etl_processed_messages")
            rounds = rounds_for(size, budget)
            wanted = max(3 if quick else 5, typical_budget // size)
            row = measure_size(
                size, rounds, typical_rounds(rounds, wanted), run, lambda: dict(last_floor)
            )
            throughput.append(row)
            print(render_size(row), flush=True)
        results: dict[str, Any] = {"machine": machine(conn), "throughput": throughput}
        results["cold_start"] = cold_start(runs=3 if quick else 7)
        results["import_ms_by_package"] = import_times(runs=1 if quick else 3)
        memory = probe("rss", runs=1 if quick else 3)
        results["peak_rss_mb_10000"] = spread([run["peak_rss_mb"] for run in memory])
        results["artifact"] = artifact_size()
        conn.run("TRUNCATE user_logins, login_etl_processed_messages")
        conn.close()
        if instructions:
            print("counting instructions under callgrind (a few minutes) ...", flush=True)
            results["instructions"] = bench_instructions.count(
                {**stack.environment(), **QUIET}, quick
            )
    results["quick"] = quick
    return results


def render_size(row: dict[str, Any]) -> str:
    """One line per batch size, as the run goes."""
    rates, ratios = row["messages_per_s"], row["ratios"]
    typical = ratios.get("login_etl/typical", {}).get("median", float("nan"))
    return (
        f"  batch {row['batch_size']:>6} ({row['rounds']} rounds): floor"
        f" {rates['floor']['median']:>8.0f}  typical {rates['typical']['median']:>7.0f}"
        f"  login-etl {rates['login_etl']['median']:>8.0f} msg/s;"
        f" login-etl/floor {ratios['login_etl/floor']['median']:.2f}"
        f" (IQR {ratios['login_etl/floor']['q1']:.2f}-{ratios['login_etl/floor']['q3']:.2f}),"
        f" /typical {typical:.1f}"
    )


def _iqr(figures: dict[str, float], form: str = ",.0f") -> str:
    return f"{figures['median']:{form}} ({figures['q1']:{form}}-{figures['q3']:{form}})"


def render_table(results: dict[str, Any]) -> str:
    """The figures as the terminal table (and the README's): medians (interquartile range)."""
    lines = [
        "| batch | rounds | floor (msg/s) | typical (msg/s) | login-etl (msg/s)"
        " | login-etl / floor | login-etl / typical |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["throughput"]:
        rates, ratios = row["messages_per_s"], row["ratios"]
        lines.append(
            f"| {row['batch_size']:,} | {row['rounds']} | {_iqr(rates['floor'])}"
            f" | {_iqr(rates['typical'])} | {_iqr(rates['login_etl'])}"
            f" | {_iqr(ratios['login_etl/floor'], '.2f')}"
            f" | {_iqr(ratios['login_etl/typical'], '.1f')} |"
        )
    cold = results["cold_start"]
    lines += [
        "",
        f"cold start (medians of {cold['import_ms']['n']}, turn about with a bare `import boto3`):"
        f" handler import {cold['import_ms']['median']:.0f} ms"
        f" = {cold['import / boto3 import']['median']:.2f}x `import boto3`"
        f" ({cold['boto3_import_ms']['median']:.0f} ms); first 10-record response"
        f" {cold['first_response_ms']['median']:.0f} ms"
        f" = {cold['first response / boto3 import']['median']:.2f}x; whole process"
        f" {cold['process_ms']['median']:.0f} ms"
        f" = {cold['process / boto3 process']['median']:.2f}x a process that imports boto3",
        "import ms by top-level package: "
        + ", ".join(f"{name} {ms:.0f}" for name, ms in results["import_ms_by_package"].items()),
        f"peak RSS with a 10,000-record batch: {results['peak_rss_mb_10000']['median']:.0f} MB"
        f" (max {results['peak_rss_mb_10000']['max']:.0f})",
    ]
    artifact = results["artifact"]
    if artifact:
        lines.append(
            f"artifact: {artifact['unzipped_mb']:.1f} MB unzipped, {artifact['zipped_mb']:.1f} MB"
            " zipped"
        )
    if results.get("instructions"):
        lines += ["", bench_instructions.render(results["instructions"])]
    return "\n".join(lines)


def draw_chart(results: dict[str, Any], path: Path) -> bool:
    """Messages per second by batch size, medians with interquartile bars, log-log.

    False without matplotlib (``make bench`` installs it; a bare ``python -m`` may not have it).
    """
    try:
        import matplotlib  # noqa: PLC0415 - only `make bench` installs it
    except ImportError:
        return False

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    sizes = [row["batch_size"] for row in results["throughput"]]
    figure, axes = pyplot.subplots(figsize=(7, 4.2), dpi=120)
    for name, label, style in (
        ("floor", "serial floor (json.loads + 2 masks + COPY line, then COPY)", "k--"),
        ("login_etl", "login-etl", "o-"),
        ("typical", "typical (BatchProcessor + INSERT per record)", "s-"),
    ):
        figures = [row["messages_per_s"][name] for row in results["throughput"]]
        medians = [f["median"] for f in figures]
        errors = [
            [m - f["q1"] for m, f in zip(medians, figures, strict=True)],
            [f["q3"] - m for m, f in zip(medians, figures, strict=True)],
        ]
        axes.errorbar(sizes, medians, yerr=errors, fmt=style, label=label, capsize=3)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("records per SQS batch")
    axes.set_ylabel("messages per second")
    m = results["machine"]
    axes.set_title(
        f"login-etl throughput, interleaved ({m['cpus']} cores, Python {m['python']},"
        f" Postgres {m['postgres'].split()[0]})",
        fontsize=10,
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``make bench`` (``ARGS="--quick"`` for a fast smoke run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, a smoke run")
    parser.add_argument(
        "--record", action="store_true", help=f"write to {RECORD_DIR} (tracked) instead"
    )
    parser.add_argument("--out", type=Path, help=f"where to write (default {RESULTS_DIR})")
    parser.add_argument("--no-instructions", action="store_true", help="skip callgrind")
    args = parser.parse_args(argv)
    out_dir = args.out or (RECORD_DIR if args.record else RESULTS_DIR)
    # Metrics are disabled for the run; Powertools still warns on every invocation.
    warnings.filterwarnings("ignore", message="No application metrics")
    print("benchmark: starting a local stack (moto server + throwaway PostgreSQL) ...")
    results = run_benchmark(args.quick, instructions=not args.no_instructions)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "benchmark.json").write_text(json.dumps(results, indent=2) + "\n")
    if results.get("instructions"):
        (out_dir / "instructions.json").write_text(
            json.dumps(results["instructions"], indent=2) + "\n"
        )
    written = ["benchmark.json"]
    if results.get("instructions"):
        written.append("instructions.json")
    if draw_chart(results, out_dir / "benchmark.png"):
        written.append("benchmark.png")
    print()
    print(render_table(results))
    print(f"\nwrote {', '.join(written)} in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
