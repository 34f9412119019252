"""The benchmark's bookkeeping: interleaving, statistics, callgrind dumps, -X importtime."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from benchmarks import floor as bench_floor
from benchmarks.benchmark import CONTENDERS, round_bodies, turn_order, typical_rounds
from benchmarks.instructions import dump_totals
from benchmarks.startup import by_top_level
from benchmarks.stats import spread
from login_etl.domain.masking import DeterministicMasker
from login_etl_cli.sample_data import generate


def test_every_contender_leads_a_round_in_turn() -> None:
    orders = [turn_order(r) for r in range(len(CONTENDERS))]
    assert sorted(order[0] for order in orders) == sorted(CONTENDERS)
    assert all(sorted(order) == sorted(CONTENDERS) for order in orders)


def test_the_typical_rounds_are_spread_over_the_whole_run() -> None:
    chosen = typical_rounds(30, 5)
    assert chosen == {0, 6, 12, 18, 24}
    assert typical_rounds(3, 5) == {0, 1, 2}


def test_a_longer_batch_of_a_round_starts_with_the_shorter_ones_bodies() -> None:
    assert round_bodies(3, 7, 500)[:200] == round_bodies(3, 7, 200)
    assert round_bodies(3, 8, 200) != round_bodies(3, 7, 200)
    assert round_bodies(2, 7, 200) != round_bodies(3, 7, 200)


def test_spread_gives_median_quartiles_and_extremes() -> None:
    figures = spread([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (figures["median"], figures["q1"], figures["q3"]) == (3.0, 2.0, 4.0)
    assert (figures["min"], figures["max"], figures["n"]) == (1.0, 5.0, 5)
    assert spread([7.0])["q1"] == 7.0


def test_import_times_are_grouped_by_top_level_package() -> None:
    output = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 |   _io",
            "import time:      2000 |       2000 |     botocore.utils",
            "import time:      1000 |       3000 |   botocore",
            "import time:       500 |       3600 | login_etl.handler",
            "import time:       300 |        300 | json.decoder",
        ]
    )
    assert by_top_level(output) == {
        "stdlib": 0.4,
        "botocore": 3.0,
        "login_etl": 0.5,
        "total": 3.9,
    }


def test_callgrind_dump_totals_are_read_by_part(tmp_path: Path) -> None:
    (tmp_path / "callgrind.out.1").write_text("part: 1\nsummary: 10\ntotals: 10\n")
    (tmp_path / "callgrind.out.2").write_text("part: 2\nsummary: 25\ntotals: 25\n")
    (tmp_path / "callgrind.out").write_text("part: 3\nsummary: 4\ntotals: 4\n")
    assert dump_totals(tmp_path) == {1: 10, 2: 25, 3: 4}


def test_the_floor_payload_is_one_copy_line_per_parsable_login() -> None:
    bodies = generate(200, 3, malformed_ratio=0.1)
    mask = DeterministicMasker(bytes(range(32))).mask
    lines = bench_floor.payload(bodies, mask, date(2026, 1, 2)).decode().splitlines()
    parsed = bench_floor.parse(bodies)
    by_parts = bench_floor.copy_lines(
        parsed, bench_floor.mask_pairs(parsed, mask), date(2026, 1, 2)
    )
    assert lines == [line.rstrip("\n") for line in by_parts]
    assert 150 < len(lines) < 200  # the malformed ones without a row are skipped
    assert all(line.count("\t") == 6 and line.endswith("\t0\t2026-01-02") for line in lines)
