"""Arbitrary bodies at the real handler: never raises, valid rows verbatim, junk reported."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pg8000.native
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from login_etl.adapters.postgres_store import ensure_schema
from login_etl.domain.validation import REQUIRED_KEYS
from login_etl.handler import lambda_handler
from login_etl_tools.event_source_mapping import LocalContext
from tests.unit.test_validation import valid_logins

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
    ensure_schema(db)  # an all-junk batch writes nothing, so creates nothing
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
