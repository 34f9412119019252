"""The pipeline's batch logic against an in-memory store: failures, duplicates, FIFO groups."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pytest

from login_etl.deadline import Deadline
from login_etl.domain.errors import Reason
from login_etl.domain.models import UserLoginRow
from login_etl.pipeline import process_batch
from login_etl.ports import WriteResult
from tests.pipeline_helpers import BAD, TODAY, MemoryStore, login, msg, upper_tokens


def failed_ids(response: dict[str, list[dict[str, str]]]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_full_success_reports_an_empty_list() -> None:
    store = MemoryStore()
    outcome = process_batch([msg("a"), msg("b")], upper_tokens, store, TODAY)
    assert outcome.batch_item_failures() == {"batchItemFailures": []}
    assert (outcome.received, outcome.written, len(store.rows)) == (2, 2, 2)
    assert store.rows[0].create_date == date(2023, 11, 14)


def test_invalid_message_fails_alone() -> None:
    store = MemoryStore()
    outcome = process_batch([msg("a"), msg("bad", BAD), msg("c")], upper_tokens, store, TODAY)
    assert failed_ids(outcome.batch_item_failures()) == ["bad"]
    assert outcome.failures[0].reason is Reason.MISSING_KEYS
    assert len(store.rows) == 2


def test_redelivery_writes_nothing_new() -> None:
    store = MemoryStore()
    process_batch([msg("a"), msg("b")], upper_tokens, store, TODAY)
    outcome = process_batch([msg("a"), msg("c")], upper_tokens, store, TODAY)
    assert (outcome.written, outcome.duplicates) == (1, 1)
    assert len(store.rows) == 3


def test_same_message_twice_in_a_batch_has_one_effect() -> None:
    store = MemoryStore()
    outcome = process_batch([msg("a"), msg("a")], upper_tokens, store, TODAY)
    assert (outcome.written, outcome.duplicates, len(store.rows)) == (1, 1, 1)
    assert store.calls == [["a"]]


def test_rows_the_database_refuses_are_reported_and_the_rest_committed_once() -> None:
    store = MemoryStore(refuse=frozenset({"evil"}))
    outcome = process_batch(
        [msg("a"), msg("x", login("evil")), msg("c")], upper_tokens, store, TODAY
    )
    assert failed_ids(outcome.batch_item_failures()) == ["x"]
    assert outcome.failures[0].reason is Reason.REJECTED_BY_DATABASE
    assert store.calls == [["a", "x", "c"], ["a", "c"]]
    assert len(store.rows) == 2


def test_failures_are_reported_in_the_order_of_the_batch_each_once() -> None:
    """Whatever step failed them: refused rows are known after invalid bodies, yet come first
    if they came first (and a message twice in the batch is named once)."""
    store = MemoryStore(refuse=frozenset({"evil"}))
    batch = [
        msg("refused", login("evil")),
        msg("a"),
        msg("invalid", BAD),
        msg("invalid", BAD),
        msg("refused-too", login("evil")),
        msg("invalid-too", BAD),
    ]
    outcome = process_batch(batch, upper_tokens, store, TODAY)
    assert failed_ids(outcome.batch_item_failures()) == [
        "refused",
        "invalid",
        "refused-too",
        "invalid-too",
    ]


def test_fifo_failure_fails_the_rest_of_its_group_only() -> None:
    store = MemoryStore()
    batch = [
        msg("g1-1", group="g1"),
        msg("g2-1", group="g2"),
        msg("g1-2", BAD, group="g1"),
        msg("g2-2", group="g2"),
        msg("g1-3", group="g1"),
    ]
    outcome = process_batch(batch, upper_tokens, store, TODAY)
    assert failed_ids(outcome.batch_item_failures()) == ["g1-2", "g1-3"]
    assert [f.reason for f in outcome.failures] == [
        Reason.MISSING_KEYS,
        Reason.EARLIER_IN_GROUP_FAILED,
    ]
    assert store.calls == [["g1-1", "g2-1", "g2-2"]]


def test_fifo_database_refusal_also_holds_back_later_group_members() -> None:
    store = MemoryStore(refuse=frozenset({"evil"}))
    batch = [msg("1", login("evil"), group="g"), msg("2", group="g"), msg("3", group="h")]
    outcome = process_batch(batch, upper_tokens, store, TODAY)
    assert failed_ids(outcome.batch_item_failures()) == ["1", "2"]
    assert store.calls[-1] == ["3"]


def test_a_store_breaking_its_contract_fails_loudly_instead_of_looping() -> None:
    class RejectsStrangers(MemoryStore):
        def write(
            self, rows: Sequence[tuple[str, UserLoginRow]], deadline: Deadline | None = None
        ) -> WriteResult:
            return WriteResult(rejected={"not-in-this-batch": "22001"})

    with pytest.raises(RuntimeError, match="not given"):
        process_batch([msg("a")], upper_tokens, RejectsStrangers(), TODAY)
