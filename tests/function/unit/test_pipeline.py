from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date

import pytest

from login_etl.domain.errors import Reason
from login_etl.domain.models import QueueMessage, UserLoginRow
from login_etl.domain.redrive_claim import FRESH_FOR_MS, ClaimKey, ClaimVerifier, RedriveClaim
from login_etl.pipeline import process_batch
from login_etl.ports import WriteResult

TODAY = date(2026, 11, 24)
GOOD = json.dumps(
    {
        "user_id": "u",
        "app_version": "1.0",
        "device_type": "ios",
        "ip": "1.2.3.4",
        "locale": None,
        "device_id": "111-22-3333",
    }
)
BAD = json.dumps({"foo": "oops_wrong_msg_type", "bar": "123"})
CLAIM_KEY = ClaimKey(bytes(range(32)))
VERIFY = ClaimVerifier([CLAIM_KEY])  # the function's: the current data key only


class MemoryStore:
    """A ledger and a table in memory, refusing the rows whose user_id is in ``refuse``."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.ledger: set[str] = set()
        self.rows: list[UserLoginRow] = []
        self.refuse = refuse
        self.calls: list[list[str]] = []

    def write(self, rows: Sequence[tuple[str, UserLoginRow]]) -> WriteResult:
        self.calls.append([mid for mid, _ in rows])
        rejected = {mid: "22001" for mid, row in rows if row.user_id in self.refuse}
        if rejected:
            return WriteResult(rejected=rejected)
        new = [(mid, row) for mid, row in rows if mid not in self.ledger]
        self.ledger.update(mid for mid, _ in new)
        self.rows.extend(row for _, row in new)
        return WriteResult(written=len(new), duplicates=len(rows) - len(new))


def msg(mid: str, body: str = GOOD, group: str | None = None) -> QueueMessage:
    return QueueMessage(mid, body, "1700000000000", group)


def login(user: str) -> str:
    return GOOD.replace('"u"', json.dumps(user))


def failed_ids(response: dict[str, list[dict[str, str]]]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_full_success_reports_an_empty_list() -> None:
    store = MemoryStore()
    outcome = process_batch([msg("a"), msg("b")], str.upper, VERIFY, store, TODAY)
    assert outcome.batch_item_failures() == {"batchItemFailures": []}
    assert (outcome.received, outcome.written, len(store.rows)) == (2, 2, 2)
    assert store.rows[0].create_date == date(2023, 11, 14)


def test_invalid_message_fails_alone() -> None:
    store = MemoryStore()
    outcome = process_batch([msg("a"), msg("bad", BAD), msg("c")], str.upper, VERIFY, store, TODAY)
    assert failed_ids(outcome.batch_item_failures()) == ["bad"]
    assert outcome.failures[0].reason is Reason.MISSING_KEYS
    assert len(store.rows) == 2


def test_redelivery_writes_nothing_new() -> None:
    store = MemoryStore()
    process_batch([msg("a"), msg("b")], str.upper, VERIFY, store, TODAY)
    outcome = process_batch([msg("a"), msg("c")], str.upper, VERIFY, store, TODAY)
    assert (outcome.written, outcome.duplicates) == (1, 1)
    assert len(store.rows) == 3


def test_same_message_twice_in_a_batch_has_one_effect() -> None:
    store = MemoryStore()
    outcome = process_batch([msg("a"), msg("a")], str.upper, VERIFY, store, TODAY)
    assert (outcome.written, outcome.duplicates, len(store.rows)) == (1, 1, 1)
    assert store.calls == [["a"]]


def test_rows_the_database_refuses_are_reported_and_the_rest_committed_once() -> None:
    store = MemoryStore(refuse=frozenset({"evil"}))
    outcome = process_batch(
        [msg("a"), msg("x", login("evil")), msg("c")], str.upper, VERIFY, store, TODAY
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
    outcome = process_batch(batch, str.upper, VERIFY, store, TODAY)
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
    outcome = process_batch(batch, str.upper, VERIFY, store, TODAY)
    assert failed_ids(outcome.batch_item_failures()) == ["g1-2", "g1-3"]
    assert [f.reason for f in outcome.failures] == [
        Reason.MISSING_KEYS,
        Reason.EARLIER_IN_GROUP_FAILED,
    ]
    assert store.calls == [["g1-1", "g2-1", "g2-2"]]


def test_fifo_database_refusal_also_holds_back_later_group_members() -> None:
    store = MemoryStore(refuse=frozenset({"evil"}))
    batch = [msg("1", login("evil"), group="g"), msg("2", group="g"), msg("3", group="h")]
    outcome = process_batch(batch, str.upper, VERIFY, store, TODAY)
    assert failed_ids(outcome.batch_item_failures()) == ["1", "2"]
    assert store.calls[-1] == ["3"]


def test_a_store_breaking_its_contract_fails_loudly_instead_of_looping() -> None:
    class RejectsStrangers(MemoryStore):
        def write(self, rows: Sequence[tuple[str, UserLoginRow]]) -> WriteResult:
            return WriteResult(rejected={"not-in-this-batch": "22001"})

    with pytest.raises(RuntimeError, match="not given"):
        process_batch([msg("a")], str.upper, VERIFY, RejectsStrangers(), TODAY)


def test_a_redriven_copy_counts_as_the_message_it_was() -> None:
    store = MemoryStore()
    original = QueueMessage("m1", GOOD, "1700000000000")
    process_batch([original], str.upper, VERIFY, store, TODAY)
    claim = CLAIM_KEY.sign(GOOD, RedriveClaim("m1", 1700000000000, 1700000900000))
    copy = QueueMessage("m2", GOOD, "1700000900100", redrive_claim=claim)
    twin = QueueMessage("m3", GOOD, "1700000900200", redrive_claim=claim)

    outcome = process_batch([copy, twin], str.upper, VERIFY, store, TODAY)

    assert (outcome.written, outcome.duplicates, outcome.failures) == (0, 2, [])
    assert len(store.rows) == 1
    assert store.ledger == {"m1"}


def test_a_redriven_copy_is_dated_by_the_login_not_the_redrive() -> None:
    store = MemoryStore()
    sent, redriven = 1_700_000_000_000, 1_700_400_000_000  # four and a half days later
    claim = CLAIM_KEY.sign(GOOD, RedriveClaim("m1", sent, redriven))
    copy = QueueMessage("m2", GOOD, str(redriven + 300), redrive_claim=claim)

    outcome = process_batch([copy], str.upper, VERIFY, store, TODAY)

    assert outcome.written == 1
    assert [row.create_date for row in store.rows] == [date(2023, 11, 14)]
    assert store.ledger == {"m1"}


def test_a_claim_replayed_onto_a_later_login_is_ignored() -> None:
    """The same body sent again after the window, with a copy's claim: a login of its own."""
    store = MemoryStore()
    signed = 1_700_000_000_000
    claim = CLAIM_KEY.sign(GOOD, RedriveClaim("m1", signed - 1000, signed))
    copy = QueueMessage("m2", GOOD, str(signed + 500), redrive_claim=claim)
    replay = QueueMessage("m3", GOOD, str(signed + FRESH_FOR_MS + 1), redrive_claim=claim)

    outcome = process_batch([copy, replay], str.upper, VERIFY, store, TODAY)

    assert (outcome.written, outcome.duplicates, outcome.failures) == (2, 0, [])
    assert store.ledger == {"m1", "m3"}


def test_a_claim_that_does_not_verify_fails_and_is_never_deduplicated() -> None:
    store = MemoryStore()
    process_batch([msg("victim")], str.upper, VERIFY, store, TODAY)
    other_key = ClaimKey(bytes(range(1, 33)))
    said = RedriveClaim("victim", 0, 0)
    forged = [
        QueueMessage("f1", login("x1"), redrive_claim="victim"),  # the old, unsigned format
        QueueMessage("f2", login("x2"), redrive_claim=CLAIM_KEY.sign(GOOD, said)),  # lifted
        QueueMessage("f3", login("x3"), redrive_claim=other_key.sign(login("x3"), said)),
        QueueMessage("f4", login("x4"), redrive_claim=""),
    ]

    outcome = process_batch([*forged, msg("fine")], str.upper, VERIFY, store, TODAY)

    assert failed_ids(outcome.batch_item_failures()) == ["f1", "f2", "f3", "f4"]
    assert {f.reason for f in outcome.failures} == {Reason.INVALID_REDRIVE_CLAIM}
    assert "victim" not in " ".join(f.detail for f in outcome.failures)
    assert (outcome.written, outcome.duplicates) == (1, 0)
    assert store.ledger == {"victim", "fine"}
