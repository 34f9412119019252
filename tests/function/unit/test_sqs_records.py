"""Odd SQS record shapes: each one fails alone, by its messageId; only a nameless one fails all."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_etl.adapters.sqs_records import MalformedEventError, to_queue_message, to_queue_messages
from login_etl.domain.errors import InvalidMessageError, Reason
from login_etl.domain.models import QueueMessage
from login_etl.pipeline import process_batch
from tests.pipeline_helpers import GOOD, TODAY, MemoryStore, upper_tokens

ABSENT = object()  # the key is left out of the record
# The attribute the redrive once set: a producer's copy of it is ignored like any other.
ATTRIBUTE = "login_etl_original_message_id"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=5), inner, max_size=2)
    ),
    max_leaves=4,
)
bodies = st.one_of(st.just(GOOD), st.just(ABSENT), json_values.filter(lambda v: v != GOOD))
sent_timestamps = st.one_of(
    st.just("1700000000000"),
    st.just(ABSENT),
    st.just("9" * 5000),
    st.from_regex(r"[0-9]{1,16}", fullmatch=True),
    json_values,
)
attribute_maps = st.one_of(
    sent_timestamps.map(lambda sent: {} if sent is ABSENT else {"SentTimestamp": sent}),
    st.just(ABSENT),
    json_values.filter(lambda v: not isinstance(v, dict)),
)
message_attributes = st.one_of(
    st.just({}),
    st.just(ABSENT),
    st.none(),
    json_values.filter(lambda v: v is not None and not isinstance(v, dict)),
    st.dictionaries(st.sampled_from(["other", ATTRIBUTE]), json_values, max_size=2),
)


def record(
    message_id: object, body: object, attributes: object, message_attrs: object
) -> dict[str, Any]:
    fields = {
        "messageId": message_id,
        "body": body,
        "attributes": attributes,
        "messageAttributes": message_attrs,
    }
    return {key: value for key, value in fields.items() if value is not ABSENT}


def odd(rec: dict[str, Any]) -> bool:
    """An independent statement of which records can never become a row."""
    attributes = rec.get("attributes")
    if rec.get("body") != GOOD or not isinstance(attributes, dict):
        return True
    sent = attributes.get("SentTimestamp")
    # messageAttributes, whatever they hold, are not read.
    return sent is not None and not (
        isinstance(sent, str)
        and sent.isdecimal()
        and sent.isascii()
        and int(sent[:20]) <= 253_402_214_400_000
    )


@given(st.lists(st.tuples(bodies, attribute_maps, message_attributes), max_size=12))
def test_every_odd_record_fails_alone_and_the_rest_are_written(
    shapes: list[tuple[object, object, object]],
) -> None:
    records = [record(f"m{i}", *shape) for i, shape in enumerate(shapes)]
    store = MemoryStore()

    outcome = process_batch(to_queue_messages(records), upper_tokens, store, TODAY)

    failed = [item["itemIdentifier"] for item in outcome.batch_item_failures()["batchItemFailures"]]
    assert failed == [r["messageId"] for r in records if odd(r)]
    assert outcome.written == len(store.rows) == len(records) - len(failed)


@pytest.mark.parametrize(
    ("shape", "reason", "detail"),
    [
        ({"body": None}, Reason.MALFORMED_RECORD, "body must be a string, got null"),
        ({"body": {"user_id": "u"}}, Reason.MALFORMED_RECORD, "body must be a string, got object"),
        ({"attributes": ABSENT}, Reason.MALFORMED_RECORD, "attributes must be an object, got null"),
        ({"attributes": "x"}, Reason.MALFORMED_RECORD, "attributes must be an object, got str"),
        (
            {"attributes": {"SentTimestamp": 1700000000000}},
            Reason.INVALID_SENT_TIMESTAMP,
            "SentTimestamp must be a string, got number",
        ),
        (
            {"attributes": {"SentTimestamp": "9" * 5000}},
            Reason.INVALID_SENT_TIMESTAMP,
            "SentTimestamp is out of range",
        ),
        (
            {"attributes": {"SentTimestamp": "1", "MessageGroupId": 3}},
            Reason.MALFORMED_RECORD,
            "MessageGroupId must be a string, got number",
        ),
    ],
)
def test_each_odd_shape_has_a_clear_reason(
    shape: dict[str, Any], reason: Reason, detail: str
) -> None:
    base: dict[str, Any] = {"messageId": "odd", "body": GOOD, "attributes": {"SentTimestamp": "1"}}
    rec = {k: v for k, v in {**base, **shape}.items() if v is not ABSENT}

    outcome = process_batch([to_queue_message(rec)], upper_tokens, MemoryStore(), TODAY)

    (failure,) = outcome.failures
    assert (failure.message_id, failure.reason) == ("odd", reason)
    assert failure.detail.startswith(detail)


def test_an_odd_record_holds_back_the_rest_of_its_fifo_group() -> None:
    attributes = {"SentTimestamp": "1", "MessageGroupId": "g"}
    records = [
        {"messageId": "1", "body": None, "attributes": attributes},
        {"messageId": "2", "body": GOOD, "attributes": attributes},
        {"messageId": "3", "body": GOOD, "attributes": {**attributes, "MessageGroupId": "h"}},
    ]
    outcome = process_batch(to_queue_messages(records), upper_tokens, MemoryStore(), TODAY)
    assert [f.message_id for f in outcome.failures] == ["1", "2"]


@pytest.mark.parametrize(
    "rec",
    [
        {"body": GOOD, "attributes": {}},
        {"messageId": "", "body": GOOD},
        {"messageId": None, "body": GOOD},
        {"messageId": 7, "body": GOOD},
        {"messageId": ["m"], "body": GOOD},
        None,
        "m1",
    ],
)
def test_only_a_record_without_a_usable_message_id_fails_the_batch(rec: object) -> None:
    with pytest.raises(MalformedEventError) as caught:
        to_queue_messages([{"messageId": "fine", "body": GOOD, "attributes": {}}, rec])
    assert GOOD not in str(caught.value)


def test_records_that_are_not_an_array_fail_the_batch() -> None:
    with pytest.raises(MalformedEventError, match="Records must be an array, got object"):
        to_queue_messages({"messageId": "m"})


def test_details_name_types_never_values() -> None:
    secret = "199.172.111.135"
    rec = {"messageId": "m", "body": {"ip": secret}, "attributes": {"SentTimestamp": secret}}
    defect = to_queue_message(rec).defect
    assert isinstance(defect, InvalidMessageError)
    assert secret not in str(defect)
    assert json.dumps(secret) not in defect.detail


def shape(message: QueueMessage) -> tuple[object, ...]:
    """A message's fields, its defect as the reason and detail it reports."""
    defect = message.defect
    return (*message[:4], None if defect is None else (defect.reason, defect.detail))


def read_one_by_one(records: list[Any]) -> list[tuple[object, ...]] | str:
    try:
        return [shape(to_queue_message(r)) for r in records]
    except MalformedEventError as error:
        return str(error)


def read_as_a_batch(records: list[Any]) -> list[tuple[object, ...]] | str:
    try:
        return [shape(m) for m in to_queue_messages(records)]
    except MalformedEventError as error:
        return str(error)


USUAL: dict[str, Any] = {
    "messageId": "m-1",
    "body": GOOD,
    "attributes": {"SentTimestamp": "1700000000000"},
    "messageAttributes": {},
}
perturbations: dict[str, st.SearchStrategy[Any]] = {
    "messageId": st.one_of(st.just(ABSENT), st.just(""), json_values),
    "body": bodies,
    "attributes": attribute_maps,
    "messageAttributes": message_attributes,
    "MessageGroupId": st.one_of(st.just("g"), json_values),
}


def perturbed(key: str, value: object) -> dict[str, Any]:
    """The usual record with one field (or the FIFO group) changed or left out."""
    rec: dict[str, Any] = {**USUAL, "attributes": dict(USUAL["attributes"])}
    target: dict[str, Any] = rec["attributes"] if key == "MessageGroupId" else rec
    if value is ABSENT:
        target.pop(key, None)
    else:
        target[key] = value
    return rec


usual_or_perturbed = st.one_of(
    st.just(USUAL),
    *[st.tuples(st.just(key), values) for key, values in perturbations.items()],
).map(lambda item: item if isinstance(item, dict) else perturbed(*item))


@given(st.lists(usual_or_perturbed, max_size=4))
def test_the_batch_reader_agrees_with_the_record_reader(records: list[Any]) -> None:
    assert read_as_a_batch(records) == read_one_by_one(records)
