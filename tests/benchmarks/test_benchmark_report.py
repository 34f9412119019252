"""``make bench``'s cost table: what each row is made of, and the block ``--record`` writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.benchmark import summarize
from benchmarks.cost import ASSUMPTIONS
from benchmarks.cpu import CallCost
from benchmarks.report import RECORD_END, RECORD_START, record_in_docs, render_table


def calls(function_s: float, postgres_s: float, rounds: int) -> list[CallCost]:
    return [CallCost(function_s, postgres_s, 0.0, function_s + postgres_s)] * rounds


def row(size: int) -> dict[str, Any]:
    scale = size / 1_000
    return summarize(
        size,
        4,
        {
            "floor": calls(0.012 * scale, 0.004 * scale, 4),
            "login_etl": calls(0.015 * scale, 0.006 * scale, 4),
            "typical": calls(0.150 * scale, 0.200 * scale, 2),
        },
        with_typical={0, 2},
    )


def results() -> dict[str, Any]:
    return {
        "command": 'make bench ARGS="--record"',
        "machine": {
            "cpus": 2,
            "machine": "x86_64",
            "python": "3.11.7",
            "postgres": "15.18 (Debian)",
            "load_average_at_start": (1.25, 1.0, 0.75),
            "load_average_at_end": (1.5, 1.0, 0.75),
        },
        "payload": {"limit_bytes": 6_291_456, "largest_batch": 6_276},
        "threads_in_process": ["MainThread"],
        "cost": [row(1_000), row(6_276)],
        "cold_start": {
            name: {"median": value, "q1": value, "q3": value, "n": 3}
            for name, value in {
                "import_ms": 400.0,
                "boto3_import_ms": 250.0,
                "import / boto3 import": 1.6,
                "first_response_ms": 900.0,
                "typical_first_response_ms": 1_800.0,
                "typical first response / login-etl first response": 2.0,
            }.items()
        },
        "import_ms_by_package": {"total": 400.0},
        "peak_rss_mb": {"median": 90.0, "max": 91.0, "batch_size": 6_276},
        "artifact": None,
    }


def test_a_row_gives_cpu_per_thousand_messages_and_gb_seconds_per_million() -> None:
    got = row(1_000)
    assert got["function_cpu_ms_per_1000"]["login_etl"]["median"] == pytest.approx(15.0)
    assert got["postgres_cpu_ms_per_1000"]["typical"]["median"] == pytest.approx(200.0)
    # 15 ms / (512 / 1,769) + 6 ms = 57.83 -> 58 ms billed, x 0.5 GB, 1,000 batches a million.
    assert got["gb_s_per_million_512mb"]["login_etl"]["median"] == pytest.approx(29.0)
    assert got["gb_s_per_million_1769mb"]["login_etl"]["median"] == pytest.approx(
        0.021 * 1_769 / 1_024 * 1_000
    )
    assert got["ratios"]["login_etl/floor function CPU"]["median"] == pytest.approx(1.25)
    assert got["ratios"]["typical/login_etl function CPU"]["median"] == pytest.approx(10.0)
    assert got["typical_rounds"] == 2
    assert len(got["calls"]["login_etl"]) == 4  # every call kept for the JSON


def test_the_table_states_the_run_the_model_and_each_contender_per_batch() -> None:
    table = render_table(results())
    assert 'make bench ARGS="--record"' in table
    assert "load average 1.25, 1.00, 0.75 at the start" in table
    assert ASSUMPTIONS in table
    assert "6,276 records" in table
    assert "| 1,000 | login-etl | 4 | 15.0 (15.0-15.0) | 6.0 (6.0-6.0) | 29.00" in table
    assert "| 6,276 | typical | 2 |" in table
    assert "= 2.00x login-etl's" in table


def test_recording_replaces_only_the_marked_block(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Title\n\nbefore\n\n{RECORD_START}\nold figures\n{RECORD_END}\n\nafter\n")
    record_in_docs(results(), doc)
    text = doc.read_text()
    assert text.startswith("# Title\n\nbefore\n\n" + RECORD_START + "\nRecorded on commit")
    assert text.endswith(RECORD_END + "\n\nafter\n")
    assert "old figures" not in text
    assert "| 6,276 | floor |" in text
    record_in_docs(results(), doc)
    assert doc.read_text() == text  # the same run, recorded again: the same text


def test_recording_needs_the_markers(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# no block here\n")
    with pytest.raises(LookupError):
        record_in_docs(results(), doc)
