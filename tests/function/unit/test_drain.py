"""The scheduled drain against an in-memory queue with SQS's visibility rules."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from login_etl.domain.models import QueueMessage
from login_etl.drain import DrainSummary, StopReason, drain
from login_etl.pipeline import BatchOutcome, process_batch
from login_etl.queue_ports import DeleteFailure, ReceivedMessage
from tests.pipeline_helpers import BAD, TODAY, MemoryStore, login, upper_tokens


class MemoryQueue:
    """Visible and in-flight messages; receive hides up to 10, as SQS does."""

    def __init__(self, bodies: Sequence[str], refuse_delete: frozenset[str] = frozenset()) -> None:
        self.visible = [QueueMessage(f"m{i}", b, "1700000000000") for i, b in enumerate(bodies)]
        self.in_flight: dict[str, QueueMessage] = {}
        self.deleted: list[str] = []
        self.receives = 0
        self.refuse_delete = refuse_delete
        self._handles = itertools.count()

    def receive(self) -> list[ReceivedMessage]:
        self.receives += 1
        taken, self.visible = self.visible[:10], self.visible[10:]
        received = []
        for message in taken:
            handle = f"h{next(self._handles)}"
            self.in_flight[handle] = message
            received.append(ReceivedMessage(message, handle))
        return received

    def delete(self, messages: Sequence[ReceivedMessage]) -> list[DeleteFailure]:
        failures = []
        for m in messages:
            if m.message.message_id in self.refuse_delete:
                failures.append(DeleteFailure(m.message.message_id, "ReceiptHandleIsInvalid"))
                continue
            del self.in_flight[m.receipt_handle]
            self.deleted.append(m.message.message_id)
        return failures


class Clock:
    """Remaining time that falls by ``step_ms`` each time it is read."""

    def __init__(self, start_ms: int, step_ms: int = 0) -> None:
        self.left = start_ms
        self.step_ms = step_ms

    def remaining_ms(self) -> int:
        self.left -= self.step_ms
        return self.left


def run(
    queue: MemoryQueue,
    store: MemoryStore,
    clock: Clock | None = None,
    receives_per_round: int = 3,
) -> DrainSummary:
    def process(messages: Sequence[QueueMessage]) -> BatchOutcome:
        return process_batch(messages, upper_tokens, store, TODAY)

    return drain(
        queue,
        process,
        (clock or Clock(900_000)).remaining_ms,
        receives_per_round=receives_per_round,
        safety_margin_ms=10_000,
        wait_time_ms=2_000,
    )


def test_drains_the_queue_writing_the_good_and_leaving_the_bad_in_flight() -> None:
    bodies = [login(f"u{i}") for i in range(95)] + [BAD] * 5
    queue, store = MemoryQueue(bodies), MemoryStore()

    summary = run(queue, store)

    assert summary.stopped_because is StopReason.QUEUE_EMPTY
    assert (summary.received, summary.written, summary.failed) == (100, 95, 5)
    assert summary.batches == 4  # 3 receives of 10 per round: 30, 30, 30, 10
    # 3 + 3 + 3, then 10 and an empty one (a short receive ends a round), then the empty one
    # that ends the drain
    assert queue.receives == 12
    assert sorted(m.body for m in queue.in_flight.values()) == [BAD] * 5  # not released
    assert queue.visible == []
    assert len(store.rows) == len(set(queue.deleted)) == 95


def test_stops_before_the_time_runs_out_and_leaves_the_rest_untouched() -> None:
    queue, store = MemoryQueue([login(f"u{i}") for i in range(300)]), MemoryStore()
    # 35 s left, and every look at the clock costs 5 s: a few rounds, then the margin.
    summary = run(queue, store, Clock(35_000, step_ms=5_000))

    assert summary.stopped_because is StopReason.TIME_LIMIT
    assert 0 < summary.written < 300
    assert queue.in_flight == {}  # nothing held: what was received was processed
    assert len(queue.visible) + len(queue.deleted) == 300


def test_no_time_for_a_single_round_receives_nothing() -> None:
    queue = MemoryQueue([login("u")])

    summary = run(queue, MemoryStore(), Clock(11_000))

    assert summary.stopped_because is StopReason.TIME_LIMIT
    assert (queue.receives, summary.received) == (0, 0)


def test_a_processing_error_propagates_and_leaves_only_its_round_in_flight() -> None:
    queue = MemoryQueue([login(f"u{i}") for i in range(60)])
    store = MemoryStore()
    calls = 0

    def process(messages: Sequence[QueueMessage]) -> BatchOutcome:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionResetError("postgres went away")
        return process_batch(messages, upper_tokens, store, TODAY)

    with pytest.raises(ConnectionResetError):
        drain(
            queue,
            process,
            Clock(900_000).remaining_ms,
            receives_per_round=2,
            safety_margin_ms=10_000,
            wait_time_ms=2_000,
        )

    assert len(queue.deleted) == 20  # the first round: written and deleted
    assert len(queue.in_flight) == 20  # the failing round: left to the visibility timeout
    assert len(queue.visible) == 20  # nothing received ahead of it


def test_delete_failures_are_reported_by_message_id() -> None:
    queue = MemoryQueue([login(f"u{i}") for i in range(15)], refuse_delete=frozenset({"m3"}))

    summary = run(queue, MemoryStore())

    assert summary.delete_failures == [DeleteFailure("m3", "ReceiptHandleIsInvalid")]
    assert summary.as_response()["deleteFailures"] == 1
    assert [m.message_id for m in queue.in_flight.values()] == ["m3"]


def test_a_delete_call_that_raises_reports_its_messages_and_does_not_stop_the_drain() -> None:
    class FlakyDeletes(MemoryQueue):
        def delete(self, messages: Sequence[ReceivedMessage]) -> list[DeleteFailure]:
            if any(m.message.message_id == "m0" for m in messages):
                raise TimeoutError
            return super().delete(messages)

    queue = FlakyDeletes([login(f"u{i}") for i in range(50)])

    summary = run(queue, MemoryStore(), receives_per_round=1)

    assert summary.written == 50
    assert {f.code for f in summary.delete_failures} == {"TimeoutError"}
    assert len(summary.delete_failures) == 10  # the whole first chunk comes back later
    assert len(queue.deleted) == 40


@settings(max_examples=60, deadline=None)
@given(
    good=st.integers(0, 120),
    bad=st.integers(0, 15),
    receives_per_round=st.integers(1, 12),
    seconds_left=st.integers(0, 120),
    step_ms=st.sampled_from([0, 1_000, 4_000]),
)
def test_every_message_is_written_once_or_still_on_the_queue(
    good: int, bad: int, receives_per_round: int, seconds_left: int, step_ms: int
) -> None:
    bodies = [login(f"u{i}") for i in range(good)] + [BAD] * bad
    queue, store = MemoryQueue(bodies), MemoryStore()

    summary = run(queue, store, Clock(seconds_left * 1000, step_ms), receives_per_round)

    on_queue = [m.message_id for m in [*queue.visible, *queue.in_flight.values()]]
    assert sorted(on_queue + queue.deleted) == sorted(f"m{i}" for i in range(good + bad))
    assert len(set(queue.deleted)) == len(queue.deleted) == summary.written == len(store.rows)
    assert all(m.body == BAD for m in queue.in_flight.values())  # only failures are held
    if summary.stopped_because is StopReason.QUEUE_EMPTY:
        assert queue.visible == []
