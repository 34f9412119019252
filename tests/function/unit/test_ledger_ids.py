"""The ledger's ids travel as a JSON array: the same array ``json.dumps`` would give."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from login_etl.adapters.postgres.ledger import json_array

ids = st.one_of(
    st.uuids().map(str),
    st.text(max_size=8),
    st.text(alphabet='a"\\\n\x00\u2028é', max_size=4),
)


@given(st.lists(ids, max_size=6))
def test_the_array_reads_back_as_the_ids(message_ids: list[str]) -> None:
    assert json.loads(json_array(message_ids)) == message_ids


@given(st.lists(st.text(max_size=8), max_size=6))
def test_the_ledger_array_is_json(ids: list[str]) -> None:
    """The hand-made JSON array of ids reads back as the ids (or is json.dumps's)."""
    parsed: Any = json.loads(json_array(ids))
    assert parsed == ids
