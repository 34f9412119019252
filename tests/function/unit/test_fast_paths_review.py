"""A hostile review of issue 16's inline fast paths: raw body text the property tests built
with json.dumps never produce, and the mask at every block boundary.

These held; they are kept as regression tests.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from login_etl.adapters.postgres_ledger import json_array
from login_etl.domain.validation import parse_login
from tests.function.unit.test_masking import KEY, MASKER, reference_mask
from tests.function.unit.test_validation import VALID, checked_only, outcome

# Raw JSON text for a value: what a producer may write, beyond what json.dumps writes.
RAW_VALUES = [
    '"1.2.3.4"',
    '"01.2.3.4"',
    '"1.0"',
    '"2.3.0"',
    '"ios"',
    '"u"',
    "null",
    "true",
    "false",
    "1e3",
    "-0",
    "1" + "0" * 5_000,  # past int()'s digit limit
    "NaN",
    "Infinity",
    "[]",
    "{}",
    '{"a": "b"}',
    '"\\u0041"',
    '"\\ud800"',
    '"\\ud83d\\ude00"',
    '"a\\u0000"',
    '"tab\there"',  # a raw control character inside a string: not JSON
    '"\x7f"',
    '"é"',
    '""',
    '" "',
    '"' + "u" * 129 + '"',
]
KEYS = [*VALID, "extra", "user_id ", "\\u0075ser_id"]
PADDING = ["", " ", "\n", "\ufeff", "\t", "{", "}", ",", "x"]


@st.composite
def raw_bodies(draw: st.DrawFn) -> str:
    """An object's text written by hand: keys repeated, left out or extra; raw values."""
    fields = {k: f'"{v}"' if isinstance(v, str) else "null" for k, v in VALID.items()}
    pairs = [f'"{k}": {v}' for k, v in fields.items()]
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(KEYS))
        value = draw(st.sampled_from(RAW_VALUES))
        where = draw(st.integers(0, len(pairs)))
        if draw(st.booleans()) and pairs:
            pairs[min(where, len(pairs) - 1)] = f'"{key}": {value}'  # replace
        else:
            pairs.insert(where, f'"{key}": {value}')  # add: maybe a duplicate key
    separator = draw(st.sampled_from([",", ", ", ",\n", " ,"]))
    lead, trail = draw(st.sampled_from(PADDING)), draw(st.sampled_from(PADDING))
    return f"{lead}{{{separator.join(pairs)}}}{trail}"


@example(
    '{"user_id": "a", "user_id": "b", "app_version": "1.0", "device_type": "ios",'
    ' "ip": "1.2.3.4", "locale": null, "device_id": "d"}'
)
@example(
    '\ufeff{"user_id": "a", "app_version": "1.0", "device_type": "ios",'
    ' "ip": "1.2.3.4", "locale": null, "device_id": "d"}'
)
@given(raw_bodies())
def test_raw_bodies_get_the_same_answer_from_the_fast_path(text: str) -> None:
    expected = outcome(checked_only, text)
    assert outcome(parse_login, text) == expected
    assert outcome(parse_login, text) == expected  # again, its app_version now known


@pytest.mark.parametrize("size", range(50))
@pytest.mark.parametrize("unit", ["a", "é", "\U0001f600"])
def test_the_mask_is_the_construction_at_every_length(size: int, unit: str) -> None:
    """0..49 characters of 1, 2 and 4 UTF-8 bytes: every padding length, one to 13 blocks."""
    value = unit * size
    assert MASKER.mask(value) == reference_mask(KEY, value)


@given(st.lists(st.text(max_size=8), max_size=6))
def test_the_ledger_array_is_json(ids: list[str]) -> None:
    """The hand-made JSON array of ids reads back as the ids (or is json.dumps's)."""
    parsed: Any = json.loads(json_array(ids))
    assert parsed == ids
