"""The COPY text line of a row, against a plain statement of COPY's text format."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_etl.adapters.postgres.copy_rows import copy_line, copy_payload
from login_etl.domain.models import UserLoginRow

ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def reference(row: UserLoginRow) -> str:
    """Every text field escaped character by character; NULL as \\N."""

    def text(value: str | None) -> str:
        return "\\N" if value is None else "".join(ESCAPES.get(c, c) for c in value)

    fields = [text(row.user_id), text(row.device_type), row.masked_ip, row.masked_device_id]
    fields += [text(row.locale), str(row.app_version), row.create_date.isoformat()]
    return "\t".join(fields) + "\n"


texts = st.text(max_size=12) | st.text(alphabet="a\\\t\n\r", max_size=6)


@given(
    texts,
    texts,
    st.none() | texts,
    st.integers(0, 999_999_999),
    st.dates(min_value=date(1970, 1, 1)),
)
def test_a_line_is_the_row_in_copy_text_format(
    user_id: str, device_type: str, locale: str | None, version: int, day: date
) -> None:
    row = UserLoginRow(user_id, device_type, "gAAAA-ip_=", "gAAAA-dev=", locale, version, day)
    assert copy_line(row) == reference(row)


rows = st.builds(
    UserLoginRow,
    texts,
    texts,
    st.just("gAAAA-ip_="),
    st.just("gAAAA-dev="),
    st.none() | texts,
    st.integers(0, 999_999_999),
    st.dates(min_value=date(1970, 1, 1)),
)


@given(st.lists(rows, max_size=8))
def test_a_payload_is_its_rows_lines_in_order(batch: list[UserLoginRow]) -> None:
    """The payload is written at once and checked after; a row that needs escaping anywhere
    in the batch must still come out as its own line."""
    assert copy_payload(batch) == "".join(map(reference, batch)).encode("utf-8")


def plain(user_id: str = "u", locale: str | None = "RU", device_type: str = "ios") -> UserLoginRow:
    return UserLoginRow(
        user_id, device_type, "gAAAA-ip_=", "gAAAA-dev=", locale, 1, date(2026, 1, 2)
    )


# Batches whose free text needs escaping, beside rows that look as if they did (a NULL locale
# is a backslash of its own in the payload; an empty locale is text, not NULL).
ESCAPE_BATCHES = {
    "a backslash beside no NULL locale": [plain("a\\b"), plain()],
    "a backslash and a NULL locale": [plain("a\\b", locale=None), plain(locale=None)],
    "a user id spelled \\N": [plain("\\N"), plain()],
    "a locale spelled \\N": [plain(locale="\\N")],
    "an empty locale (text, not NULL)": [plain(locale="")],
    "a carriage return alone": [plain("a\rb")],
    "a CR LF": [plain(device_type="x\r\n")],
    "a tab in one row, a newline in another": [plain("a\tb"), plain(locale="x\ny")],
    "the end-of-data marker": [plain("\\."), plain()],
}


@pytest.mark.parametrize("batch", ESCAPE_BATCHES.values(), ids=ESCAPE_BATCHES.keys())
def test_a_payload_that_needs_escaping_is_its_rows_lines(batch: list[UserLoginRow]) -> None:
    assert copy_payload(batch) == "".join(map(reference, batch)).encode("utf-8")
