"""``make bench``: throughput, cold start, memory and artifact size, in one run.

Three implementations on the same local Postgres, the event already in memory, for SQS batches
of 10, 100, 1,000 and 10,000 records (generated bodies: repeated devices and IPs, 1 % malformed,
fresh bodies and message ids for every repetition):

* **limit**: ``COPY`` of the same number of already-masked rows, plus the irreducible
  per-message work (one ``json.loads``, two ``Fernet.encrypt``), timed apart and added;
* **typical**: Powertools ``BatchProcessor``, ``Fernet.encrypt``, one INSERT per record
  (``typical_handler.py``);
* **login-etl**: ``login_etl.handler.lambda_handler``.

Cold start and peak RSS are measured in fresh interpreters (``bench_probe.py``).
"""

from __future__ import annotations

import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from importlib import metadata
from io import BytesIO
from pathlib import Path
from typing import Any

import boto3
import pg8000.native
from cryptography.fernet import Fernet

from login_etl.adapters.config_stores import read_parameter
from login_etl.adapters.postgres_connection import connect
from login_etl.config import KMS_ENCRYPTION_CONTEXT, Settings, connection_params_from_url
from login_etl_tools.bench_probe import sqs_event
from login_etl_tools.event_source_mapping import LocalContext
from login_etl_tools.sample_data import generate
from login_etl_tools.stack import local_stack, patched_environ
from login_etl_tools.typical_handler import make_typical_handler

BATCH_SIZES = (10, 100, 1_000, 10_000)
MESSAGES_PER_SIZE = 30_000  # repetitions = this / batch size, between 5 and 300
TYPICAL_MESSAGES_PER_SIZE = 10_000  # one INSERT per record: the slow one gets fewer
ROOT = Path(__file__).resolve().parents[2]
SAM_ARTIFACT = ROOT / ".aws-sam" / "build" / "LoginEtlFunction"
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def repetitions(size: int, budget: int) -> int:
    return max(5, min(300, budget // size))


def workloads(size: int, count: int, seed: int) -> list[list[str]]:
    """``count`` batches of fresh bodies (different seeds: repeats within, rarely across)."""
    return [generate(size, seed + i, malformed_ratio=0.01) for i in range(count)]


def time_handler(handler: Handler, batches: list[list[str]]) -> float:
    """Median messages per second over the batches (events built outside the timing)."""
    rates = []
    for bodies in batches:
        event = sqs_event(bodies)
        started = time.perf_counter()
        handler(event, LocalContext())
        rates.append(len(bodies) / (time.perf_counter() - started))
    return statistics.median(rates)


def time_limit(
    conn: pg8000.native.Connection, fernet: Fernet, batches: list[list[str]]
) -> tuple[float, float, float]:
    """Median (messages/s of the floor, µs/message of COPY, µs/message of CPU work)."""
    rates, copy_us, cpu_us = [], [], []
    for bodies in batches:
        started = time.perf_counter()
        for body in bodies:
            try:
                message = json.loads(body)
            except ValueError:
                continue  # a malformed one: no masking to do
            if isinstance(message, dict):
                fernet.encrypt(str(message.get("ip")).encode())
                fernet.encrypt(str(message.get("device_id")).encode())
        cpu = time.perf_counter() - started
        line = f"user\tandroid\t{'x' * 100}\t{'y' * 100}\tRU\t2003000\t2026-11-25\n".encode() * len(
            bodies
        )
        started = time.perf_counter()
        conn.run("START TRANSACTION")
        conn.run(
            "COPY user_logins (user_id, device_type, masked_ip, masked_device_id, locale,"
            " app_version, create_date) FROM STDIN",
            stream=[line],
        )
        conn.run("COMMIT")
        copy = time.perf_counter() - started
        rates.append(len(bodies) / (cpu + copy))
        copy_us.append(copy / len(bodies) * 1e6)
        cpu_us.append(cpu / len(bodies) * 1e6)
    return statistics.median(rates), statistics.median(copy_us), statistics.median(cpu_us)


def probe(mode: str, env: dict[str, str], runs: int) -> list[dict[str, float]]:
    """Fresh interpreters running ``bench_probe`` (cold start or peak memory)."""
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        output = subprocess.run(
            [sys.executable, "-m", "login_etl_tools.bench_probe", mode],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        figures = json.loads(output.strip().splitlines()[-1])
        figures["process_ms"] = (time.perf_counter() - started) * 1000
        results.append(figures)
    return results


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
    }


def run_benchmark(out_dir: Path, quick: bool = False) -> dict[str, Any]:
    """Measure everything; write ``benchmark.json`` (and the chart) to ``out_dir``."""
    budget = 3_000 if quick else MESSAGES_PER_SIZE
    typical_budget = 1_000 if quick else TYPICAL_MESSAGES_PER_SIZE
    quiet = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}
    with local_stack() as stack, patched_environ({**stack.environment(), **quiet}):
        from login_etl.handler import lambda_handler  # noqa: PLC0415 - after the env is set

        conn = connect(connection_params_from_url(stack.database_url, Settings.from_env()))
        blob = read_parameter(boto3.client("ssm"), stack.provisioned.data_key_parameter)
        key = boto3.client("kms").decrypt(
            CiphertextBlob=base64.b64decode(blob), EncryptionContext=KMS_ENCRYPTION_CONTEXT
        )["Plaintext"]
        fernet_key = base64.urlsafe_b64encode(key)
        lambda_handler(sqs_event(generate(10, 1)), LocalContext())  # schema and key, warm
        typical = make_typical_handler(conn, fernet_key)
        throughput = []
        for size in BATCH_SIZES:
            conn.run("TRUNCATE user_logins, login_etl_processed_messages")
            count = repetitions(size, budget)
            limit, copy_us, cpu_us = time_limit(conn, Fernet(fernet_key), workloads(size, count, 1))
            ours = time_handler(lambda_handler, workloads(size, count, 10_000))
            slow = time_handler(typical, workloads(size, repetitions(size, typical_budget), 20_000))
            throughput.append(
                {
                    "batch_size": size,
                    "limit": limit,
                    "typical": slow,
                    "login_etl": ours,
                    "limit_copy_us_per_message": copy_us,
                    "limit_cpu_us_per_message": cpu_us,
                }
            )
            print(
                f"  batch {size:>6}: limit {limit:>8.0f}  typical {slow:>7.0f}"
                f"  login-etl {ours:>8.0f} messages/s",
                flush=True,
            )
        cold = probe("cold", {}, runs=3 if quick else 7)
        memory = probe("rss", {}, runs=1 if quick else 3)
        results = {
            "machine": machine(conn),
            "throughput": throughput,
            "cold_start": {
                name: statistics.median(run[name] for run in cold)
                for name in ("import_ms", "first_response_ms", "process_ms")
            },
            "peak_rss_mb_10000": statistics.median(run["peak_rss_mb"] for run in memory),
            "artifact": artifact_size(),
            "quick": quick,
        }
        conn.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "benchmark.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def render_table(results: dict[str, Any]) -> str:
    """The figures as the terminal table (and the README's)."""
    lines = [
        "| batch | limit (msg/s) | typical (msg/s) | login-etl (msg/s) | vs limit | vs typical |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["throughput"]:
        lines.append(
            f"| {row['batch_size']:,} | {row['limit']:,.0f} | {row['typical']:,.0f}"
            f" | {row['login_etl']:,.0f} | {row['login_etl'] / row['limit']:.2f}x"
            f" | {row['login_etl'] / row['typical']:.1f}x |"
        )
    cold, artifact = results["cold_start"], results["artifact"]
    lines += [
        "",
        f"cold start: handler import {cold['import_ms']:.0f} ms, first 10-record response"
        f" {cold['first_response_ms']:.0f} ms after the process started its script"
        f" ({cold['process_ms']:.0f} ms including interpreter start-up)",
        f"peak RSS with a 10,000-record batch: {results['peak_rss_mb_10000']:.0f} MB",
    ]
    if artifact:
        lines.append(
            f"artifact: {artifact['unzipped_mb']:.1f} MB unzipped, {artifact['zipped_mb']:.1f} MB"
            " zipped"
        )
    return "\n".join(lines)


def draw_chart(results: dict[str, Any], path: Path) -> None:
    """Messages per second by batch size, the three lines, log-log."""
    import matplotlib  # noqa: PLC0415 - only `make bench` installs it

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    sizes = [row["batch_size"] for row in results["throughput"]]
    figure, axes = pyplot.subplots(figsize=(7, 4.2), dpi=120)
    for name, label, style in (
        ("limit", "limit (COPY + json.loads + 2 Fernet)", "k--"),
        ("login_etl", "login-etl", "o-"),
        ("typical", "typical (BatchProcessor + INSERT per record)", "s-"),
    ):
        axes.plot(sizes, [row[name] for row in results["throughput"]], style, label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("records per SQS batch")
    axes.set_ylabel("messages per second")
    m = results["machine"]
    axes.set_title(
        f"login-etl throughput ({m['cpus']} cores, Python {m['python']},"
        f" Postgres {m['postgres'].split()[0]})",
        fontsize=10,
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def output_dir(argv: list[str]) -> Path:
    """Where results go: ``.bench/`` (ignored by git), ``docs/`` only when asked to record.

    ``docs/benchmark.json`` and ``.png`` are the figures the README quotes; a plain ``make
    bench`` used to overwrite them and leave the checkout dirty.
    """
    return ROOT / ("docs" if "--record" in argv else ".bench")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``make bench``: ``--quick`` for a smoke run, ``--record`` to update docs/."""
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    out_dir = output_dir(argv)
    print("benchmark: starting a local stack (moto server + throwaway PostgreSQL) ...")
    results = run_benchmark(out_dir, quick)
    draw_chart(results, out_dir / "benchmark.png")
    print()
    print(render_table(results))
    print(f"\nwrote {out_dir / 'benchmark.json'} and {out_dir / 'benchmark.png'}")
    if out_dir.name != "docs":
        print("(make bench ARGS=--record writes them to docs/, the README's figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
