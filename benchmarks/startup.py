"""``make bench``'s start-up figures, each in fresh interpreters: what a cold start costs.

* **cold start**: ``import login_etl.handler`` against a bare ``import boto3`` (the least any
  Python function that calls AWS imports), and the **first response** (init and a first
  1,000-record batch) of login-etl against the typical handler's (``probe.py``); the three
  take turns (A B C, B C A, ...), each round's ratios paired;
* **import time by top-level package** (``python -X importtime``);
* **peak RSS** with the largest batch; the SAM-built **artifact**'s size.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import zipfile
from collections import defaultdict
from io import BytesIO
from pathlib import Path
from typing import Any

from benchmarks.stats import spread

BOTO3_PROBE = (
    "import time; started = time.perf_counter(); import boto3; import json;"
    " print(json.dumps({'import_ms': (time.perf_counter() - started) * 1000}))"
)
PROBES = {
    "boto3": ["-c", BOTO3_PROBE],
    "login_etl": ["-m", "benchmarks.probe", "cold"],
    "typical": ["-m", "benchmarks.probe", "typical"],
}


def fresh_python(arguments: list[str]) -> dict[str, float]:
    """Run a fresh interpreter; its last output line's JSON figures, and the process's ms."""
    started = time.perf_counter()
    output = subprocess.run(
        [sys.executable, *arguments], capture_output=True, text=True, check=True
    ).stdout
    figures: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    figures["process_ms"] = (time.perf_counter() - started) * 1000
    return figures


def cold_start(runs: int) -> dict[str, Any]:
    """The three probes, turn about, ``runs`` rounds, with the ratios of each round."""
    samples: dict[str, list[float]] = defaultdict(list)
    names = list(PROBES)
    for round_ in range(runs):
        shift = round_ % len(names)
        got = {name: fresh_python(PROBES[name]) for name in names[shift:] + names[:shift]}
        bare, ours, typical = got["boto3"], got["login_etl"], got["typical"]
        samples["boto3_import_ms"].append(bare["import_ms"])
        samples["boto3_process_ms"].append(bare["process_ms"])
        for name in ("import_ms", "first_response_ms", "process_ms"):
            samples[name].append(ours[name])
        samples["typical_first_response_ms"].append(typical["first_response_ms"])
        samples["typical_import_ms"].append(typical["import_ms"])
        samples["import / boto3 import"].append(ours["import_ms"] / bare["import_ms"])
        samples["typical first response / login-etl first response"].append(
            typical["first_response_ms"] / ours["first_response_ms"]
        )
        samples["process / boto3 process"].append(ours["process_ms"] / bare["process_ms"])
    return {name: spread(values) for name, values in samples.items()}


def peak_rss(size: int, runs: int) -> dict[str, float]:
    """login-etl's peak RSS (MB) answering one ``size``-record batch in a fresh interpreter."""
    probes = [fresh_python(["-m", "benchmarks.probe", "rss", str(size)]) for _ in range(runs)]
    return {**spread([probe["peak_rss_mb"] for probe in probes]), "batch_size": size}


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


def artifact_size(built: Path) -> dict[str, float] | None:
    """Bytes of the SAM-built function, unzipped and zipped (None before `make build`)."""
    if not (built / "login_etl").is_dir():
        return None
    buffer = BytesIO()
    unzipped = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(built.rglob("*")):
            if path.is_file():
                unzipped += path.stat().st_size
                archive.write(path, path.relative_to(built))
    return {"unzipped_mb": unzipped / 1e6, "zipped_mb": len(buffer.getvalue()) / 1e6}
