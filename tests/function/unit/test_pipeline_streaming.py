"""The pipeline with a store that writes while the rows are masked (``StreamingLoginStore``).

The rows such a store receives, and the outcome, must be those of the plain ``write`` path,
whatever the batch holds (invalid bodies, FIFO groups, duplicates, refused rows); and the
ledger ids must be known before any row is masked, which is what lets the store start first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_etl.domain.models import QueueMessage, UserLoginRow
from login_etl.pipeline import BatchOutcome, process_batch
from login_etl.ports import WriteResult
from tests.function.unit.test_pipeline import BAD, GOOD, TODAY, VERIFY, MemoryStore, login


class StreamingMemoryStore(MemoryStore):
    """MemoryStore that takes the ids first and the rows one at a time."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        super().__init__(refuse)
        self.streamed: list[list[str]] = []

    def write_streamed(self, keys: Sequence[str], rows: Iterable[UserLoginRow]) -> WriteResult:
        self.streamed.append(list(keys))
        return self.write(list(zip(keys, rows, strict=True)))


class CountingMask:
    """str.upper, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, value: str) -> str:
        self.calls += 1
        return value.upper()


def test_the_ids_are_known_before_any_row_is_masked() -> None:
    mask = CountingMask()
    masked_when_called: list[int] = []

    class Observing(StreamingMemoryStore):
        def write_streamed(self, keys: Sequence[str], rows: Iterable[UserLoginRow]) -> WriteResult:
            masked_when_called.append(mask.calls)
            return super().write_streamed(keys, rows)

    store = Observing()
    batch = [QueueMessage(f"m{i}", GOOD, "1700000000000") for i in range(5)]

    outcome = process_batch([*batch, QueueMessage("bad", BAD)], mask, VERIFY, store, TODAY)

    assert masked_when_called == [0]  # the store was called before the first mask
    assert mask.calls == 10  # then every valid row was masked, as the store took them
    assert store.streamed == [[f"m{i}" for i in range(5)]]  # the invalid one never reaches it
    assert (outcome.written, [f.message_id for f in outcome.failures]) == (5, ["bad"])


def test_a_refused_row_is_written_around_with_the_rows_already_masked() -> None:
    mask = CountingMask()
    store = StreamingMemoryStore(refuse=frozenset({"evil"}))
    batch = [QueueMessage("a", GOOD), QueueMessage("x", login("evil")), QueueMessage("c", GOOD)]

    outcome = process_batch(batch, mask, VERIFY, store, TODAY)

    assert store.calls == [["a", "x", "c"], ["a", "c"]]
    assert mask.calls == 6  # each row masked once, kept for the second write
    assert [f.message_id for f in outcome.failures] == ["x"]


def summary(outcome: BatchOutcome) -> tuple[Any, ...]:
    failures = [(f.message_id, f.reason, f.detail) for f in outcome.failures]
    return (outcome.received, outcome.written, outcome.duplicates, failures)


message_ids = st.sampled_from(["m1", "m2", "m3", "m4", "m5"])
bodies = st.sampled_from([GOOD, BAD, login("evil"), login("other"), "not json"])
groups = st.none() | st.sampled_from(["g1", "g2"])
batches = st.lists(
    st.tuples(message_ids, bodies, groups).map(
        lambda t: QueueMessage(t[0], t[1], "1700000000000", t[2])
    ),
    max_size=8,
)


@given(batches, st.lists(batches, max_size=2))
def test_streamed_and_plain_writes_give_the_same_rows_and_outcome(
    batch: list[QueueMessage], earlier: list[list[QueueMessage]]
) -> None:
    plain, streamed = MemoryStore(frozenset({"evil"})), StreamingMemoryStore(frozenset({"evil"}))
    for previous in earlier:  # some ids already in the ledger
        process_batch(previous, str.upper, VERIFY, plain, TODAY)
        process_batch(previous, str.upper, VERIFY, streamed, TODAY)

    expected = summary(process_batch(batch, str.upper, VERIFY, plain, TODAY))

    assert summary(process_batch(batch, str.upper, VERIFY, streamed, TODAY)) == expected
    assert streamed.rows == plain.rows
    assert streamed.calls == plain.calls
    assert streamed.ledger == plain.ledger


def test_a_failure_while_masking_reaches_the_caller_through_the_store() -> None:
    def broken(value: str) -> str:
        raise RuntimeError("the mask failed")

    store = StreamingMemoryStore()
    with pytest.raises(RuntimeError, match="the mask failed"):
        process_batch([QueueMessage("a", GOOD)], broken, VERIFY, store, TODAY)
    assert store.rows == []
    assert store.ledger == set()


def test_a_batch_with_nothing_to_write_still_answers() -> None:
    store = StreamingMemoryStore()
    outcome = process_batch([QueueMessage("bad", json.dumps([1]))], str.upper, VERIFY, store, TODAY)
    assert store.streamed == [[]]
    assert [f.message_id for f in outcome.failures] == ["bad"]
