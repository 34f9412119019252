from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_etl.domain.app_version import InvalidAppVersionError, decode, encode

parts = st.integers(min_value=0, max_value=999)
versions = st.tuples(parts, parts, parts)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.3.0", 2_003_000),
        ("0.96", 96_000),
        ("9.10", 9_010_000),
        ("2.00", 2_000_000),
        ("0.2.6", 2_006),
        ("2.6", 2_006_000),
        ("0.26", 26_000),
        ("999.999.999", 999_999_999),
    ],
)
def test_examples_from_the_spec(text: str, expected: int) -> None:
    assert encode(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2",
        "2.",
        ".2",
        "1.2.3.4",
        "1000.0",
        "1.1000",
        "a.b",
        " 1.2",
        "1.2 ",
        "1..2",
        "-1.2",
        "+1.2",
        "1.2.3-beta",
        "\uff11.\uff12",
        "1.\u0662",
        "1_0.2",
    ],
)
def test_anything_else_is_invalid(text: str) -> None:
    with pytest.raises(InvalidAppVersionError):
        encode(text)


@given(versions)
def test_round_trip_through_canonical_form(version: tuple[int, int, int]) -> None:
    text = ".".join(map(str, version))
    assert decode(encode(text)) == text


@given(versions, versions)
def test_integer_order_is_version_order(a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    ea, eb = encode(".".join(map(str, a))), encode(".".join(map(str, b)))
    assert (ea < eb) == (a < b)
    assert (ea == eb) == (a == b)


@given(parts, parts)
def test_two_part_versions_have_patch_zero(major: int, minor: int) -> None:
    assert encode(f"{major}.{minor}") == encode(f"{major}.{minor}.0")


def test_fits_postgres_integer() -> None:
    assert encode("999.999.999") < 2**31


@pytest.mark.parametrize("value", [-1, 1_000_000_000])
def test_decode_rejects_out_of_range(value: int) -> None:
    with pytest.raises(InvalidAppVersionError):
        decode(value)
