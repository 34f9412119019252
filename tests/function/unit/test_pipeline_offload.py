"""The pipeline with a ``MaskOffload``: part of the masking done elsewhere, the same rows.

Each message here has its own IP and device id, so a token given to the wrong row, or the IP's
and the device's swapped, changes the rows compared.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_etl import pipeline
from login_etl.domain.models import QueueMessage
from login_etl.pipeline import process_batch
from tests.function.unit.test_pipeline import BAD, TODAY, VERIFY
from tests.function.unit.test_pipeline_streaming import StreamingMemoryStore, summary


def body(number: int, user: str = "u") -> str:
    return json.dumps(
        {
            "user_id": user,
            "app_version": "1.0",
            "device_type": "ios",
            "ip": f"10.0.{number // 256}.{number % 256}",
            "locale": None,
            "device_id": f"{number:03d}-22-3333",
        }
    )


def mask(value: str) -> str:
    return f"<{value}>"


class InProcessOffload:
    """Masks what it is given with ``mask``, at once; records what it was given, and when."""

    def __init__(self, store: StreamingMemoryStore) -> None:
        self.submitted: list[list[str]] = []
        self.store_calls_at_submit: list[int] = []
        self._store = store

    def submit(self, values: list[str]) -> Callable[[], list[str]]:
        self.submitted.append(list(values))
        self.store_calls_at_submit.append(len(self._store.streamed))
        return lambda: [mask(value) for value in values]


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "OFFLOAD_MIN_ROWS", 3)


def test_the_last_rows_values_go_to_the_offload_before_the_store_starts() -> None:
    store = StreamingMemoryStore()
    offload = InProcessOffload(store)
    batch = [QueueMessage(f"m{i}", body(i), "1700000000000") for i in range(10)]

    outcome = process_batch(batch, mask, VERIFY, store, TODAY, offload=offload)

    share = len(batch) - int(len(batch) * pipeline.OFFLOAD_SHARE)
    expected = [value for i in range(share, 10) for value in (f"10.0.0.{i}", f"{i:03d}-22-3333")]
    assert offload.submitted == [expected]  # the IP, then the device id, of each, in order
    assert offload.store_calls_at_submit == [0]  # before the store (and its thread) started
    assert outcome.written == 10
    assert [(row.masked_ip, row.masked_device_id) for row in store.rows] == [
        (f"<10.0.0.{i}>", f"<{i:03d}-22-3333>") for i in range(10)
    ]


def test_a_batch_below_the_threshold_is_masked_here() -> None:
    store = StreamingMemoryStore()
    offload = InProcessOffload(store)
    batch = [QueueMessage(f"m{i}", body(i), "1700000000000") for i in range(2)]

    process_batch(batch, mask, VERIFY, store, TODAY, offload=offload)

    assert offload.submitted == []
    assert len(store.rows) == 2


entries = st.tuples(
    st.integers(0, 40),  # which login (its own IP and device)
    st.sampled_from(["valid", "valid", "valid", "invalid", "refused"]),
    st.none() | st.sampled_from(["g1", "g2"]),
    st.integers(0, 60),  # message id: some repeat
)


def to_message(entry: tuple[int, str, str | None, int]) -> QueueMessage:
    number, kind, group, mid = entry
    text = BAD if kind == "invalid" else body(number, "evil" if kind == "refused" else "u")
    return QueueMessage(f"m{mid}", text, "1700000000000", group)


@given(
    st.lists(entries, max_size=30).map(lambda es: [to_message(e) for e in es]),
    st.lists(entries, max_size=10).map(lambda es: [to_message(e) for e in es]),
    st.floats(0.0, 1.0),
)
def test_with_an_offload_the_rows_and_the_outcome_are_those_without(
    batch: list[QueueMessage], earlier: list[QueueMessage], share: float
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "OFFLOAD_SHARE", share)
        here, offloaded = (
            StreamingMemoryStore(frozenset({"evil"})),
            StreamingMemoryStore(frozenset({"evil"})),
        )
        process_batch(earlier, mask, VERIFY, here, TODAY)  # some ids already in the ledger
        process_batch(earlier, mask, VERIFY, offloaded, TODAY)
        offload = InProcessOffload(offloaded)

        expected = summary(process_batch(batch, mask, VERIFY, here, TODAY))
        outcome = process_batch(batch, mask, VERIFY, offloaded, TODAY, offload=offload)

    assert summary(outcome) == expected
    assert offloaded.rows == here.rows
    assert offloaded.calls == here.calls
    assert offloaded.ledger == here.ledger
