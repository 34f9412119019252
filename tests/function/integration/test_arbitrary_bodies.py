"""Arbitrary bodies and record shapes at the real handler: never raises (unless a record has
no usable messageId), valid rows verbatim, junk reported by messageId."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pg8000.native
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from login_etl.adapters.postgres.schema import ensure_schema
from login_etl.adapters.postgres.transaction import Session
from login_etl.adapters.sqs_records import MalformedEventError
from login_etl.domain.validation import REQUIRED_KEYS
from login_etl.handler import lambda_handler
from login_etl_local.event_source_mapping import LocalContext
from tests.login_strategies import valid_logins

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
nasty_strings = st.sampled_from(
    [
        "'; DROP TABLE user_logins; --",
        "\x00",
        "\t\n\\N",
        "\\",
        "é" * 300,
        "x" * 100_000,
        "",
        "\ud800",
        "1.2.3.4",
        "null",
    ]
)
junk_bodies = st.one_of(
    st.text(),  # mostly not JSON
    json_values.map(json.dumps).filter(lambda b: not isinstance(json.loads(b), dict)),
    st.dictionaries(st.text(max_size=12), json_values, max_size=8)
    .filter(lambda d: d.keys() != REQUIRED_KEYS)
    .map(json.dumps),
    st.tuples(valid_logins, st.sampled_from(sorted(REQUIRED_KEYS - {"locale"})), nasty_strings)
    .map(
        lambda t: json.dumps({**t[0], t[1]: t[2]}) if t[2] != "" else json.dumps({**t[0], t[1]: 7})
    )
    .filter(lambda b: _invalid_field(json.loads(b))),
    st.tuples(valid_logins, st.sampled_from(sorted(REQUIRED_KEYS)), json_values)
    .filter(lambda t: not isinstance(t[2], str))
    .filter(lambda t: not (t[1] == "locale" and t[2] is None))
    .map(lambda t: json.dumps({**t[0], t[1]: t[2]})),
)


def _invalid_field(login: dict[str, Any]) -> bool:
    """True when the nasty string makes the login invalid (some, like "1.2.3.4" as ip, don't)."""
    from login_etl.domain.errors import InvalidMessageError  # noqa: PLC0415
    from login_etl.domain.validation import parse_login  # noqa: PLC0415

    try:
        parse_login(json.dumps(login))
    except InvalidMessageError:
        return True
    return False


def record(body: str) -> dict[str, Any]:
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "r",
        "body": body,
        "attributes": {"SentTimestamp": "1700000000000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:login-queue",
    }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(valid_logins, max_size=5), st.lists(junk_bodies, min_size=1, max_size=5), st.randoms()
)
def test_arbitrary_bodies(
    db: pg8000.native.Connection, valid: list[dict[str, Any]], junk: list[str], rnd: Any
) -> None:
    ensure_schema(Session(db))  # an all-junk batch writes nothing, so creates nothing
    batch_tag = uuid.uuid4().hex
    valid = [{**login, "user_id": f"{batch_tag}-{i}"} for i, login in enumerate(valid)]
    records = [record(json.dumps(v)) for v in valid] + [record(b) for b in junk]
    rnd.shuffle(records)
    junk_ids = {r["messageId"] for r in records if batch_tag not in r["body"]}

    response = lambda_handler({"Records": records}, LocalContext())

    assert {item["itemIdentifier"] for item in response["batchItemFailures"]} == junk_ids
    rows = db.run(
        "SELECT user_id, device_type, locale FROM user_logins WHERE user_id LIKE :t",
        t=f"{batch_tag}-%",
    )
    assert sorted(map(tuple, rows)) == sorted(
        (v["user_id"], v["device_type"], v["locale"]) for v in valid
    )


ODD_SHAPES: dict[str, tuple[dict[str, Any], str, str]] = {
    "SentTimestamp as a JSON number": (
        {"attributes": {"SentTimestamp": 1700000000000}},
        "invalid_sent_timestamp",
        "SentTimestamp must be a string, got number",
    ),
    "SentTimestamp of 5,000 digits": (
        {"attributes": {"SentTimestamp": "9" * 5000}},
        "invalid_sent_timestamp",
        "SentTimestamp is out of range",
    ),
    "body null": ({"body": None}, "malformed_record", "body must be a string, got null"),
    "body an object": (
        {"body": {"user_id": "u"}},
        "malformed_record",
        "body must be a string, got object",
    ),
    "no attributes map": (
        {"attributes": None},
        "malformed_record",
        "attributes must be an object, got null",
    ),
}


def valid_body(tag: str) -> str:
    return json.dumps(
        {
            "user_id": tag,
            "app_version": "2.3.0",
            "device_type": "android",
            "ip": "199.172.111.135",
            "locale": None,
            "device_id": "593-47-5928",
        }
    )


@pytest.mark.parametrize(("shape", "reason", "detail"), ODD_SHAPES.values(), ids=ODD_SHAPES.keys())
def test_an_odd_record_fails_alone_with_a_logged_reason(
    db: pg8000.native.Connection,
    function_logs: io.StringIO,
    shape: dict[str, Any],
    reason: str,
    detail: str,
) -> None:
    tag = uuid.uuid4().hex
    odd = {**record(valid_body(f"{tag}-odd")), **shape}
    good = record(valid_body(f"{tag}-good"))

    response = lambda_handler({"Records": [odd, good]}, LocalContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": odd["messageId"]}]}
    rows = db.run("SELECT user_id FROM user_logins WHERE user_id LIKE :t", t=f"{tag}-%")
    assert rows == [[f"{tag}-good"]]
    logged = [json.loads(line) for line in function_logs.getvalue().splitlines()]
    (left,) = [line for line in logged if line["message"] == "message left on the queue"]
    assert left["message_id"] == odd["messageId"]
    assert (left["reason"], left["detail"]) == (reason, detail)


@pytest.mark.parametrize("message_id", [None, "", 7], ids=["missing", "empty", "a number"])
def test_a_record_without_a_usable_message_id_fails_the_whole_batch(
    db: pg8000.native.Connection, message_id: object
) -> None:
    ensure_schema(Session(db))
    nameless = record(valid_body("nameless"))
    if message_id is None:
        del nameless["messageId"]
    else:
        nameless["messageId"] = message_id

    with pytest.raises(MalformedEventError, match="no messageId"):
        lambda_handler({"Records": [record(valid_body("named")), nameless]}, LocalContext())
    assert db.run("SELECT count(*) FROM user_logins WHERE user_id = 'named'") == [[0]]


odd_values = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=5),  # too short to be a login, or a key the function reads
    st.from_regex(r"[0-9]{1,16}", fullmatch=True),
    st.just("9" * 5000),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
PLACES = ["none", "body", "attributes", "SentTimestamp", "messageAttributes", "redrive attribute"]


def changed(rec: dict[str, Any], place: str, value: object) -> dict[str, Any]:
    """The record with ``value`` put in ``place``."""
    if place == "none":
        return rec
    if place == "SentTimestamp":
        return {**rec, "attributes": {"SentTimestamp": value}}
    if place == "redrive attribute":
        return {**rec, "messageAttributes": {"login_etl_original_message_id": value}}
    return {**rec, place: value}


def stays_valid(place: str, value: object) -> bool:
    """An independent statement of which changes still make a row."""
    if place == "none":
        return True
    if place == "attributes":  # a map without SentTimestamp: today's date
        return isinstance(value, dict)
    if place == "SentTimestamp":
        return value is None or (
            isinstance(value, str)
            and value.isdecimal()
            and value.isascii()
            and len(value) <= 15
            and int(value) <= 253_402_214_400_000
        )
    # messageAttributes are not read: whatever they hold (an old redrive attribute included),
    # the message is itself.
    return place in ("messageAttributes", "redrive attribute")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.tuples(st.sampled_from(PLACES), odd_values), min_size=1, max_size=8))
def test_arbitrary_record_shapes(
    db: pg8000.native.Connection, changes: list[tuple[str, object]]
) -> None:
    ensure_schema(Session(db))
    tag = uuid.uuid4().hex
    records = [
        changed(record(valid_body(f"{tag}-{i}")), place, value)
        for i, (place, value) in enumerate(changes)
    ]
    valid = [r for r, change in zip(records, changes, strict=True) if stays_valid(*change)]

    response = lambda_handler({"Records": records}, LocalContext())

    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    assert failed == {r["messageId"] for r in records} - {r["messageId"] for r in valid}
    rows = db.run("SELECT user_id FROM user_logins WHERE user_id LIKE :t", t=f"{tag}-%")
    assert sorted(row[0] for row in rows) == sorted(json.loads(r["body"])["user_id"] for r in valid)
