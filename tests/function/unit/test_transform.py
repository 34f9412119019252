from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_etl.domain.errors import InvalidMessageError
from login_etl.domain.models import LoginEvent
from login_etl.domain.transform import create_date, to_rows

TODAY = date(2026, 11, 24)


def test_absent_timestamp_falls_back_to_today() -> None:
    assert create_date(None, TODAY) == TODAY


def test_midnight_boundaries_are_utc() -> None:
    assert create_date("1700006399999", TODAY) == date(2023, 11, 14)
    assert create_date("1700006400000", TODAY) == date(2023, 11, 15)


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 30)))
def test_agrees_with_datetime(moment: datetime) -> None:
    millis = int(moment.replace(tzinfo=UTC).timestamp() * 1000)
    expected = datetime.fromtimestamp(millis / 1000, tz=UTC).date()
    assert create_date(str(millis), TODAY) == expected


@pytest.mark.parametrize("raw", ["", "-1", "1.5", "abc", "\u0661\u0662", "9" * 30, "9" * 5000])
def test_malformed_timestamp_is_invalid(raw: str) -> None:
    with pytest.raises(InvalidMessageError):
        create_date(raw, TODAY)


def test_leading_zeros_beyond_int_s_digit_limit_are_still_the_number() -> None:
    assert create_date("0" * 5000 + "1700000000000", TODAY) == date(2023, 11, 14)


@given(st.integers(0, 6000), st.integers(0, 10**20), st.booleans())
def test_any_digit_string_is_a_date_or_invalid_never_a_crash(
    zeros: int, value: int, huge: bool
) -> None:
    raw = "0" * zeros + str(value) + ("7" * 5000 if huge else "")
    if huge or value > 253_402_214_400_000:  # 9999-12-31T00:00:00Z in ms
        with pytest.raises(InvalidMessageError):
            create_date(raw, TODAY)
    else:
        assert create_date(raw, TODAY) == datetime.fromtimestamp(value // 1000, tz=UTC).date()


MIDNIGHT = 1_700_006_400_000  # 2023-11-15T00:00:00Z in ms
near_midnight = st.integers(MIDNIGHT - 2, MIDNIGHT + 1).map(str)
# Text that sorts between two milliseconds of that day without being one of them.
odd_neighbours = st.sampled_from(
    ["170000640000:", "17000064000\u0661\u0662", "0" + str(MIDNIGHT), str(MIDNIGHT) + "1"]
)


@given(st.lists(near_midnight | odd_neighbours | st.integers(0, 10**14).map(str), max_size=8))
def test_a_run_of_timestamps_gets_each_its_own_date(raws: list[str]) -> None:
    """The last day is kept between calls: each answer must still be the timestamp's own."""
    for raw in raws:
        if raw.isdecimal() and raw.isascii():
            expected: object = datetime.fromtimestamp(int(raw) // 1000, tz=UTC).date()
        else:
            expected = InvalidMessageError
        try:
            got: object = create_date(raw, TODAY)
        except InvalidMessageError:
            got = InvalidMessageError
        assert got == expected


@given(st.text())
def test_any_text_is_a_date_or_invalid_never_a_crash(raw: str) -> None:
    with contextlib.suppress(InvalidMessageError):
        assert isinstance(create_date(raw, TODAY), date)


def test_rows_mask_only_the_pii() -> None:
    event = LoginEvent("u", "ios", "1.2.3.4", None, 2_003_000, "593-47-5928")
    rows = to_rows({"m1": (event, TODAY)}, lambda values: {v: f"<{v[::-1]}>" for v in values})
    row = rows["m1"]
    assert (row.masked_ip, row.masked_device_id) == ("<4.3.2.1>", "<8295-74-395>")
    assert (row.user_id, row.device_type, row.locale, row.app_version, row.create_date) == (
        "u",
        "ios",
        None,
        2_003_000,
        TODAY,
    )


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.tuples(st.sampled_from(["1.2.3.4", "::1", "x"]), st.sampled_from(["d1", "d2", "x"])),
        max_size=20,
    )
)
def test_each_value_is_asked_once_and_each_row_gets_its_own_tokens(
    pairs: dict[str, tuple[str, str]],
) -> None:
    asked: list[list[str]] = []

    def tokens_of(values: Iterable[str]) -> dict[str, str]:
        asked.append(list(values))
        return {v: f"<{v}>" for v in asked[-1]}

    valid = {
        mid: (LoginEvent(mid, "ios", ip, None, 1, device), TODAY)
        for mid, (ip, device) in pairs.items()
    }
    rows = to_rows(valid, tokens_of)

    assert len(asked) == 1  # one call for the whole batch
    assert set(asked[0]) == {v for pair in pairs.values() for v in pair}
    assert {mid: (r.masked_ip, r.masked_device_id) for mid, r in rows.items()} == {
        mid: (f"<{ip}>", f"<{device}>") for mid, (ip, device) in pairs.items()
    }
    assert [r.user_id for r in rows.values()] == list(pairs)  # the batch's order
