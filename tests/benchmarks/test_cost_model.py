"""The cost model of ``make bench``: vCPU share, 1 ms billing, GB-seconds per million."""

from __future__ import annotations

import pytest

from benchmarks.cost import (
    ASSUMPTIONS,
    billed_ms,
    cpu_ms_per_thousand,
    gb_s_per_million,
    gb_seconds,
    vcpu_share,
)


def test_a_full_vcpu_at_1769_mb_and_a_proportional_share_below() -> None:
    assert vcpu_share(1_769) == 1.0
    assert vcpu_share(3_538) == 1.0  # single-threaded: a second vCPU buys nothing
    assert vcpu_share(512) == pytest.approx(512 / 1_769)


def test_the_function_cpu_is_stretched_by_the_share_and_postgres_added_as_is() -> None:
    # 10 ms of CPU at 512 MB: 34.55 ms; plus 5 ms of Postgres: 39.55 -> 40 ms billed.
    assert billed_ms(0.010, 0.005, 512) == 40
    assert billed_ms(0.010, 0.005, 1_769) == 15


def test_each_invocation_is_rounded_up_to_the_millisecond() -> None:
    assert billed_ms(0.0001, 0.0, 1_769) == 1
    assert billed_ms(0.0010001, 0.0, 1_769) == 2
    assert billed_ms(0.002, 0.0, 1_769) == 2
    assert billed_ms(0.1 + 0.2, 0.0, 1_769) == 300  # 300.00000000000006 ms is 300 ms


def test_gb_seconds_are_duration_times_memory_in_gb() -> None:
    assert gb_seconds(1_000, 1_024) == 1.0
    assert gb_seconds(40, 512) == pytest.approx(0.02)


def test_gb_seconds_per_million_messages_spread_one_invocation_over_its_batch() -> None:
    # 1,000 messages in 40 billed ms at 512 MB: 0.02 GB-s, 1,000 such calls a million messages.
    assert gb_s_per_million(0.010, 0.005, 1_000, 512) == pytest.approx(20.0)
    # A 10-message call of 0.1 ms is billed a whole ms: the rounding dominates small batches.
    assert gb_s_per_million(0.0001, 0.0, 10, 1_769) == pytest.approx(0.001 * 1_769 / 1_024 * 1e5)


def test_cpu_per_thousand_messages() -> None:
    assert cpu_ms_per_thousand(0.012, 1_000) == pytest.approx(12.0)
    assert cpu_ms_per_thousand(0.0012, 10) == pytest.approx(120.0)


def test_the_assumptions_name_the_model() -> None:
    for part in ("vCPU share", "1,769 MB", "Postgres CPU", "1 ms", "1,024"):
        assert part in ASSUMPTIONS
