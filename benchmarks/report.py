"""``make bench``'s report: the terminal table, the chart, and the block ``--record`` puts in
``docs/benchmarks.md`` (between ``RECORD_START`` and ``RECORD_END``, nothing else touched)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from benchmarks import instructions as bench_instructions
from benchmarks.cost import ASSUMPTIONS, MEMORY_SIZES_MB

RECORD_START = "<!-- figures: make bench ARGS=--record -->"
RECORD_END = "<!-- /figures -->"
LABELS = {"floor": "floor", "login_etl": "login-etl", "typical": "typical"}


def _iqr(figures: dict[str, float], form: str = ",.1f") -> str:
    return f"{figures['median']:{form}} ({figures['q1']:{form}}-{figures['q3']:{form}})"


def render_payload(payload: dict[str, Any]) -> str:
    """Which batch is the largest that fits Lambda's payload, and how close it comes."""
    line = (
        f"largest batch: {payload['largest_batch']:,} records, the most whose SQS event fits"
        f" Lambda's {payload['limit_bytes']:,}-byte invocation payload (every round's bodies)"
    )
    if "largest_event_bytes" in payload:
        line += f"; the largest event sent: {payload['largest_event_bytes']:,} bytes"
    return line


def render_size(row: dict[str, Any]) -> str:
    """One line per batch size, as the run goes."""
    cpu, ratios = row["function_cpu_ms_per_1000"], row["ratios"]
    ours = ratios["login_etl/floor function CPU"]
    return (
        f"  batch {row['batch_size']:>6,} ({row['rounds']} rounds): function CPU-ms / 1,000 msg"
        f" floor {cpu['floor']['median']:.1f}, login-etl {cpu['login_etl']['median']:.1f},"
        f" typical {cpu['typical']['median']:.1f}; login-etl/floor {ours['median']:.2f}"
        f" (IQR {ours['q1']:.2f}-{ours['q3']:.2f}), typical/login-etl"
        f" {ratios['typical/login_etl function CPU']['median']:.1f}"
    )


def render_cost(rows: list[dict[str, Any]]) -> str:
    """The cost table: per batch size and contender, medians (interquartile range)."""
    memory = " | ".join(f"GB-s / M msg, {mb:,} MB" for mb in MEMORY_SIZES_MB)
    lines = [
        f"| batch | contender | rounds | function CPU-ms / 1,000 msg | Postgres CPU-ms / 1,000"
        f" msg | {memory} | msg/s (wall) |",
        "|---:|---|---:|---:|---:|" + "---:|" * len(MEMORY_SIZES_MB) + "---:|",
    ]
    for row in rows:
        for name, label in LABELS.items():
            rounds = row["typical_rounds"] if name == "typical" else row["rounds"]
            gb_s = " | ".join(
                _iqr(row[f"gb_s_per_million_{mb}mb"][name], ",.2f") for mb in MEMORY_SIZES_MB
            )
            lines.append(
                f"| {row['batch_size']:,} | {label} | {rounds}"
                f" | {_iqr(row['function_cpu_ms_per_1000'][name])}"
                f" | {_iqr(row['postgres_cpu_ms_per_1000'][name])}"
                f" | {gb_s} | {_iqr(row['messages_per_s'][name], ',.0f')} |"
            )
    return "\n".join(lines)


def render_ratios(rows: list[dict[str, Any]]) -> str:
    """The paired per-round ratios: medians (interquartile range)."""
    names = list(rows[0]["ratios"])
    lines = [
        "| batch | " + " | ".join(name.replace("_", "-") for name in names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for row in rows:
        cells = " | ".join(_iqr(row["ratios"][name], ".2f") for name in names)
        lines.append(f"| {row['batch_size']:,} | {cells} |")
    return "\n".join(lines)


def render_startup(results: dict[str, Any]) -> list[str]:
    """Cold start, first response, import time by package, peak RSS, artifact."""
    cold = results["cold_start"]
    typical_ratio = cold["typical first response / login-etl first response"]
    lines = [
        f"cold start (fresh interpreters, medians of {cold['import_ms']['n']}, turn about):"
        f" `import login_etl.handler` {cold['import_ms']['median']:,.0f} ms"
        f" = {cold['import / boto3 import']['median']:.2f}x a bare `import boto3`"
        f" ({cold['boto3_import_ms']['median']:,.0f} ms);"
        f" first response (init + a first 1,000-record batch) login-etl"
        f" {cold['first_response_ms']['median']:,.0f} ms, typical"
        f" {cold['typical_first_response_ms']['median']:,.0f} ms"
        f" = {typical_ratio['median']:.2f}x login-etl's"
        f" (IQR {typical_ratio['q1']:.2f}-{typical_ratio['q3']:.2f})",
        "import ms by top-level package: "
        + ", ".join(f"{name} {ms:.0f}" for name, ms in results["import_ms_by_package"].items()),
        f"peak RSS with a {results['peak_rss_mb']['batch_size']:,}-record batch:"
        f" {results['peak_rss_mb']['median']:.0f} MB (max {results['peak_rss_mb']['max']:.0f})",
    ]
    artifact = results["artifact"]
    if artifact:
        lines.append(
            f"artifact: {artifact['unzipped_mb']:.1f} MB unzipped, {artifact['zipped_mb']:.1f} MB"
            " zipped"
        )
    return lines


def render_conditions(results: dict[str, Any]) -> str:
    """The command, the machine and its load: what the figures are to be read against."""
    m = results["machine"]
    start = ", ".join(f"{load:.2f}" for load in m["load_average_at_start"])
    end = ", ".join(f"{load:.2f}" for load in m.get("load_average_at_end", ()))
    return (
        f"`{results.get('command', 'make bench')}`: {m['cpus']} cores {m['machine']},"
        f" Python {m['python']}, PostgreSQL {m['postgres'].split()[0]} on loopback;"
        f" load average {start} at the start, {end or '?'} at the end"
        + (" (--quick: a smoke run, few rounds)" if results.get("quick") else "")
    )


def render_table(results: dict[str, Any]) -> str:
    """Everything, as the terminal shows it (and the docs' block holds)."""
    rows = results["cost"]
    others = sorted(call[2] * 1e6 for row in rows for name in LABELS for call in row["calls"][name])
    lines = [
        render_conditions(results),
        "",
        render_payload(results["payload"]),
        "",
        ASSUMPTIONS,
        "",
        "Cost per batch size and contender, medians (interquartile range), one interleaved run:",
        "",
        render_cost(rows),
        "",
        "Ratios within each round, medians (interquartile range):",
        "",
        render_ratios(rows),
        "",
        "function CPU = the calling thread's; the rest of this process during a call (threads:"
        f" {', '.join(results.get('threads_in_process', ['?']))}) median"
        f" {others[len(others) // 2]:.0f} µs, max {others[-1]:.0f} µs (the clocks' own reads);"
        " Postgres CPU = all the server's processes (schedstat).",
        "",
        *render_startup(results),
    ]
    if results.get("instructions"):
        lines += ["", bench_instructions.render(results["instructions"])]
    return "\n".join(lines)


def record_in_docs(results: dict[str, Any], doc: Path) -> None:
    """Put the run's table between the markers of ``doc`` (the rest of it untouched)."""
    text = doc.read_text()
    pattern = re.compile(re.escape(RECORD_START) + r"\n.*?" + re.escape(RECORD_END), re.DOTALL)
    if not pattern.search(text):
        raise LookupError(f"{doc} has no {RECORD_START} ... {RECORD_END} block")
    block = f"{RECORD_START}\n{render_record(results)}\n{RECORD_END}"
    doc.write_text(pattern.sub(lambda _: block, text, count=1))


def render_record(results: dict[str, Any]) -> str:
    """The recorded block: the run's conditions and commit, then its table."""
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain", "--", "src") else ""
    return (
        f"Recorded on commit `{commit}`{dirty},"
        f" [benchmark.json](benchmark.json), [benchmark.png](benchmark.png):\n\n"
        + render_table({**results, "instructions": None})
    )


def _git(*arguments: str) -> str:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        ["git", "-C", str(root), *arguments], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def draw_chart(results: dict[str, Any], path: Path) -> bool:
    """CPU-ms per 1,000 messages by batch size and contender: function (solid) and Postgres
    (hatched) side by side, medians with interquartile bars, log scale.

    False without matplotlib (``make bench`` installs it; a bare ``python -m`` may not have it).
    """
    try:
        import matplotlib  # noqa: PLC0415 - only `make bench` installs it
    except ImportError:
        return False

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    rows = results["cost"]
    figure, axes = pyplot.subplots(figsize=(8, 5), dpi=120)
    width = 0.13
    colours = {"floor": "0.45", "login_etl": "tab:blue", "typical": "tab:orange"}
    for index, name in enumerate(LABELS):
        for part, (key, hatch) in enumerate(
            (("function_cpu_ms_per_1000", None), ("postgres_cpu_ms_per_1000", "//"))
        ):
            figures = [row[key][name] for row in rows]
            medians = [f["median"] for f in figures]
            errors = [
                [m - f["q1"] for m, f in zip(medians, figures, strict=True)],
                [f["q3"] - m for m, f in zip(medians, figures, strict=True)],
            ]
            offset = (index * 2 + part - 2.5) * width
            axes.bar(
                [slot + offset for slot in range(len(rows))],
                medians,
                width,
                yerr=errors,
                capsize=2,
                color=colours[name] if hatch is None else "white",
                edgecolor=colours[name],
                hatch=hatch,
                label=f"{LABELS[name]}, {'function' if hatch is None else 'Postgres'}",
            )
    axes.set_xticks(range(len(rows)), [f"{row['batch_size']:,}" for row in rows])
    axes.set_yscale("log")
    axes.set_xlabel("records per SQS batch (the last: the most that fit a 6 MB payload)")
    axes.set_ylabel("CPU-ms per 1,000 messages")
    m = results["machine"]
    axes.set_title(
        f"What a batch costs: CPU per 1,000 messages, interleaved ({m['cpus']} cores,"
        f" Python {m['python']}, Postgres {m['postgres'].split()[0]})",
        fontsize=9,
    )
    axes.grid(True, axis="y", which="both", alpha=0.3)
    axes.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    figure.tight_layout()
    figure.savefig(path)
    return True
