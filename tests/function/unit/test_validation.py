from __future__ import annotations

import contextlib
import ipaddress
import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from login_etl.domain.errors import InvalidMessageError, Reason
from login_etl.domain.models import LoginEvent
from login_etl.domain.validation import (
    MAX_DEVICE_ID_BYTES,
    _checked_login,
    canonical_ip,
    parse_login,
)
from tests.login_strategies import valid_logins

VALID: dict[str, Any] = {
    "user_id": "424cdd21-063a-43a7-b91b-7ca1a833afae",
    "app_version": "2.3.0",
    "device_type": "android",
    "ip": "199.172.111.135",
    "locale": "RU",
    "device_id": "593-47-5928",
}


def body(**changes: Any) -> str:
    return json.dumps({**VALID, **changes})


def reason_of(text: str) -> Reason:
    with pytest.raises(InvalidMessageError) as info:
        parse_login(text)
    return info.value.reason


def test_the_example_message() -> None:
    assert parse_login(body()) == LoginEvent(
        user_id=VALID["user_id"],
        device_type="android",
        ip="199.172.111.135",
        locale="RU",
        app_version=2_003_000,
        device_id="593-47-5928",
    )


def test_null_locale_stays_none() -> None:
    assert parse_login(body(locale=None)).locale is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (json.dumps({"foo": "oops_wrong_msg_type", "bar": "123"}), Reason.MISSING_KEYS),
        ("not json", Reason.NOT_JSON),
        ("", Reason.NOT_JSON),
        ("[" * 100_000, Reason.NOT_JSON),
        ('{"user_id": x}', Reason.NOT_JSON),  # the object scanner's StopIteration, not a crash
        ('{"a": -}', Reason.NOT_JSON),
        ('{"a": 1,}', Reason.NOT_JSON),
        ("[1, 2]", Reason.NOT_AN_OBJECT),
        ('"a string"', Reason.NOT_AN_OBJECT),
        (body(extra="x"), Reason.UNEXPECTED_KEYS),
        (body(app_version=2), Reason.WRONG_TYPE),
        (body(user_id=None), Reason.WRONG_TYPE),
        (body(ip=["1.2.3.4"]), Reason.WRONG_TYPE),
        (body(locale=7), Reason.WRONG_TYPE),
        (body(device_id={"a": 1}), Reason.WRONG_TYPE),
        (body(device_type=True), Reason.WRONG_TYPE),
        (body(user_id=""), Reason.EMPTY_VALUE),
        (body(locale=""), Reason.EMPTY_VALUE),
        (body(user_id="a\x00b"), Reason.BAD_CHARACTERS),
        (
            '{"user_id": "\\ud800", "app_version": "1.0", "device_type": "ios", "ip": "1.2.3.4",'
            ' "locale": null, "device_id": "1"}',
            Reason.BAD_CHARACTERS,
        ),
        (body(user_id="u" * 129), Reason.TOO_LONG),
        (body(device_type="d" * 33), Reason.TOO_LONG),
        (body(locale="l" * 33), Reason.TOO_LONG),
        (body(device_id="9" * (MAX_DEVICE_ID_BYTES + 1)), Reason.TOO_LONG),
        (body(device_id="é" * (MAX_DEVICE_ID_BYTES // 2 + 1)), Reason.TOO_LONG),
        (body(ip="256.1.1.1"), Reason.INVALID_IP),
        (body(ip="1.2.3"), Reason.INVALID_IP),
        (body(ip="fe80::1%eth0"), Reason.INVALID_IP),
        (body(ip="1" * 1000), Reason.INVALID_IP),
        (body(app_version="2.3.0.1"), Reason.INVALID_APP_VERSION),
        (body(app_version="1" * 1000), Reason.INVALID_APP_VERSION),
    ],
)
def test_invalid_messages_name_their_reason(text: str, reason: Reason) -> None:
    assert reason_of(text) == reason


@given(st.text(max_size=60).map(lambda rest: "{" + rest))
@example('{"user_id": x}')
@example('{"a": [1, }')
def test_a_body_that_looks_like_an_object_is_a_login_or_invalid_never_a_crash(text: str) -> None:
    """Anything else escaping (StopIteration did) fails the whole batch: a poison pill."""
    with contextlib.suppress(InvalidMessageError):
        parse_login(text)


def test_limits_are_inclusive() -> None:
    event = parse_login(
        body(
            user_id="u" * 128,
            device_type="d" * 32,
            locale="l" * 32,
            device_id="9" * MAX_DEVICE_ID_BYTES,
        )
    )
    assert len(event.user_id) == 128


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("199.172.111.135", "199.172.111.135"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:db8::0001", "2001:db8::1"),
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("::FFFF:0a01:0203", "10.1.2.3"),
        ("127.96.0.101", "127.96.0.101"),
    ],
)
def test_ip_canonical_form(raw: str, canonical: str) -> None:
    assert canonical_ip(raw) == canonical


def test_leading_zero_ipv4_is_ambiguous_and_rejected() -> None:
    assert reason_of(body(ip="010.1.1.1")) == Reason.INVALID_IP


# A marker no error text contains, followed by anything: finding it means a value leaked.
secrets = st.text(max_size=40).map(lambda s: "PII:" + s)


@given(st.sampled_from(["ip", "device_id", "app_version", "user_id"]), secrets)
def test_errors_never_echo_the_value(field: str, value: str) -> None:
    # Each variant is invalid: the wrong type, too long, or (ip, app_version) bad syntax.
    variants = [body(**{field: [value]}), body(**{field: value * 50})]
    if field in ("ip", "app_version"):
        variants.append(body(**{field: value}))
    for text in variants:
        with pytest.raises(InvalidMessageError) as info:
            parse_login(text)
        assert value not in str(info.value)


@given(valid_logins)
def test_valid_logins_keep_their_values(login: dict[str, Any]) -> None:
    event = parse_login(json.dumps(login))
    assert (event.user_id, event.device_type, event.ip, event.locale, event.device_id) == (
        login["user_id"],
        login["device_type"],
        login["ip"],
        login["locale"],
        login["device_id"],
    )


dotted = st.lists(
    st.one_of(st.integers(0, 999).map(str), st.from_regex(r"0[0-9]{1,2}", fullmatch=True)),
    min_size=3,
    max_size=5,
).map(".".join)


@given(st.one_of(dotted, st.text(max_size=20), st.ip_addresses(v=4).map(str)))
def test_the_ipv4_fast_path_agrees_with_ipaddress(text: str) -> None:
    try:
        expected: str | None = str(ipaddress.ip_address(text))
    except ValueError:
        expected = None
    if expected is not None and ipaddress.ip_address(text).version == 4:
        assert canonical_ip(text) == expected
    elif expected is None:
        with pytest.raises(InvalidMessageError):
            canonical_ip(text)


def outcome(parse: Any, text: str) -> object:
    """What a parser makes of a body: the event, or the reason and detail of its refusal."""
    try:
        return parse(text)
    except InvalidMessageError as error:
        return (error.reason, error.detail)


def checked_only(text: str) -> LoginEvent:
    """The full rules alone: json.loads, then ``_checked_login`` (no fast path)."""
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidMessageError(Reason.NOT_JSON, "body is not valid JSON") from None
    return _checked_login(payload)


awkward_strings = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="\\\t\n\r\x00\"' é\u2028\ud800", max_size=6),
    st.sampled_from(["", "1.2.3.4", "01.2.3.4", "::ffff:1.2.3.4", "2001:DB8::1", "fe80::1%eth0"]),
    st.sampled_from(["1.0", "2.3.0", "1.2.3.4", "1000.0", "9.10", " 1.0", "1.0\n"]),
    st.from_regex(r"[0-9]{3}-[0-9]{2}-[0-9]{4}", fullmatch=True),
    st.text(alphabet="ab", min_size=120, max_size=260),
)
ascii_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
edges: dict[str, Any] = {
    "user_id": ascii_text | st.text(alphabet="u", min_size=127, max_size=129),
    "app_version": st.sampled_from(["1.0", "2.3.0", "1.2.3.4", "1000.0", "9.10", "x", ""]),
    "device_type": ascii_text | st.text(alphabet="d", min_size=31, max_size=33),
    "ip": st.ip_addresses(v=4).map(str) | st.sampled_from(["01.2.3.4", "::1", "256.1.1.1"]),
    "locale": st.none() | ascii_text | st.integers(),
    "device_id": ascii_text
    | st.text(alphabet="i", min_size=MAX_DEVICE_ID_BYTES - 1, max_size=MAX_DEVICE_ID_BYTES + 1),
}
# Bodies that look like the usual one (ASCII, no backslash), at most one field near or past
# its rule.
plain_logins = st.one_of(
    st.just(VALID),
    *[edge.map(lambda value, key=key: {**VALID, key: value}) for key, edge in edges.items()],
)
awkward_values = st.one_of(
    awkward_strings, st.none(), st.integers(), st.booleans(), st.floats(), st.lists(st.none())
)
awkward_logins = st.dictionaries(
    st.sampled_from([*VALID, "extra"]), awkward_values, min_size=5, max_size=7
).map(lambda d: {**{k: VALID[k] for k in VALID if k not in d and len(d) < 6}, **d})


@example({**VALID, "ip": "01.2.3.4"}, True, "")
@example({**VALID, "ip": "1.2.3.4 "}, True, "")
@example({**VALID, "user_id": "u" * 129}, True, "")
@example({**VALID, "device_id": "i" * (MAX_DEVICE_ID_BYTES + 1)}, True, "")
@example({**VALID, "locale": ""}, True, "")
@example({**VALID, "user_id": "tab\there"}, True, "")
@given(
    st.one_of(valid_logins, plain_logins, awkward_logins),
    st.booleans(),
    st.sampled_from(["", " ", "\n"]),
)
def test_the_fast_path_agrees_with_the_full_rules(
    login: dict[str, Any], ascii_only: bool, padding: str
) -> None:
    text = json.dumps(login, ensure_ascii=ascii_only) + padding
    expected = outcome(checked_only, text)
    assert outcome(parse_login, text) == expected
    assert outcome(parse_login, text) == expected  # again, with its app_version now known


# Raw JSON text of a value, for the bodies written in the usual key order: what the regex of
# the usual body must take exactly as json.loads and the full rules do, or leave to them.
def _quoted(text: str) -> str:
    return f'"{text}"'


raw_strings = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12).map(
        json.dumps
    ),
    st.text(alphabet=' !"#[\\]^~\x7f\x1f\t\né\u2028', max_size=6).map(
        _quoted
    ),  # raw, maybe not JSON
    st.sampled_from(
        [
            '""',
            '" "',
            '"\\u0041"',
            '"\\"',
            '"a\\"b"',
            '"a"b"',
            '"a", "b"',
            "null",
            "1",
            "true",
            "[]",
            "{}",
        ]
    ),
)


def _lengths(unit: str, limit: int) -> list[str]:
    return [_quoted(unit * n) for n in (limit - 1, limit, limit + 1)]


# Per key, raw text at the edges of its rule, each taken as often as any other value.
raw_edges: dict[str, list[str]] = {
    "user_id": _lengths("u", 128),
    "app_version": [
        _quoted(v) for v in ["1.0", "2.3.0", "1.2.3.4", "1000.0", "9.10", "01.1", "1" * 11, "1.0 "]
    ],
    "device_type": _lengths("d", 32),
    "ip": [
        _quoted(ip)
        for ip in [
            "1.2.3.4",
            "255.255.255.255",
            "0.0.0.0",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "::1",
            "::ffff:1.2.3.4",
            "1.2.3.4 ",
        ]
    ],
    "locale": [*_lengths("l", 32), "null", "nul", "NULL", '"null"', '"RU"'],
    "device_id": _lengths("i", MAX_DEVICE_ID_BYTES),
}
raw_fields = {key: st.sampled_from(edges) | raw_strings for key, edges in raw_edges.items()}


SEPARATORS = [", ", ",", ",  ", " ,", ",\n", " ", "", ";"]
COLONS = [": ", ":", ":  ", " :", ":\t", " ", "", "="]


@st.composite
def bodies_in_the_usual_order(draw: st.DrawFn) -> str:
    """The six keys in the producers' order; one or two values' raw text near or past its rule.

    Mostly what the regex of the usual body matches, or misses by one thing.
    """
    values = {key: json.dumps(value) for key, value in VALID.items()}
    for key in draw(st.lists(st.sampled_from(list(VALID)), min_size=1, max_size=2)):
        values[key] = draw(raw_fields[key])
    usual = draw(st.integers(0, 3)) > 0  # json.dumps's separators, three times in four
    separators = st.just(", ") if usual else st.sampled_from(SEPARATORS)
    colons = st.just(": ") if usual else st.sampled_from(COLONS)
    text = "{"
    for number, (key, value) in enumerate(values.items()):
        if number:
            text += draw(separators)
        text += f'"{key}"{draw(colons)}{value}'
    return text + ("}" if usual else draw(st.sampled_from(["}", "} ", "}}", ",}", " }"])))


@example(
    '{"user_id":"u","app_version":"1.0","device_type":"d","ip":"1.2.3.4",'
    '"locale":null,"device_id":"i"}'
)
@example(
    '{"user_id": "u", "app_version": "1.0", "device_type": "d", "ip": "1.2.3.4",'
    ' "locale": "null", "device_id": "i"}'
)
@given(bodies_in_the_usual_order())
def test_the_usual_body_regex_agrees_with_the_full_rules(text: str) -> None:
    """Whatever the regex of the usual body takes, it reads as json.loads and the rules do."""
    expected = outcome(checked_only, text)
    assert outcome(parse_login, text) == expected
    assert outcome(parse_login, text) == expected  # again, its app_version now known


@pytest.mark.parametrize(
    ("key", "raw"),
    [(key, raw) for key, edges in raw_edges.items() for raw in [*edges, '"a"b"', '"\x7f"', "nul"]],
)
def test_each_edge_of_the_usual_body_reads_as_the_full_rules_read_it(key: str, raw: str) -> None:
    """Every edge value of every key, in an otherwise usual body: not left to chance."""
    values = {k: raw if k == key else json.dumps(v) for k, v in VALID.items()}
    text = "{" + ", ".join(f'"{k}": {v}' for k, v in values.items()) + "}"
    assert outcome(parse_login, text) == outcome(checked_only, text)


@pytest.mark.parametrize("separator", SEPARATORS)
@pytest.mark.parametrize("colon", COLONS)
def test_the_usual_body_with_other_separators(separator: str, colon: str) -> None:
    text = "{" + separator.join(f'"{k}"{colon}{json.dumps(v)}' for k, v in VALID.items()) + "}"
    assert outcome(parse_login, text) == outcome(checked_only, text)


# --- raw body text that json.dumps never writes, against the fast path ---------------------

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
