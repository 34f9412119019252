"""Rows as the text format of ``COPY ... FROM STDIN``: one line a row, fields tab-separated."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from login_etl.adapters.postgres.schema import copy_text
from login_etl.domain.models import UserLoginRow

NULL = "\\N"
_DAY_TEXT: dict[date, str] = {}
_DAY_TEXT_MAX = 1_024


def copy_payload(rows: Iterable[UserLoginRow]) -> bytes:
    """The rows as one ``COPY`` text payload (empty for no rows)."""
    return "".join(map(copy_line, rows)).encode("utf-8")


def copy_line(row: UserLoginRow) -> str:
    """One line of COPY's text format; tokens, version and date never need escaping.

    The date's text is kept per day (formatting a date anew was a large part of this
    function), and the three free-text fields are searched for characters to escape in one
    go, four ``in`` rather than a regex, as they rarely have any (docs/instructions.md,
    "COPY lines").
    """
    user_id, device_type, ip, device_id, locale, version, day = row
    day_text = _DAY_TEXT.get(day)
    if day_text is None:
        day_text = day.isoformat()
        if len(_DAY_TEXT) < _DAY_TEXT_MAX:
            _DAY_TEXT[day] = day_text
    free_text = f"{user_id}{device_type}{locale or ''}"
    if "\\" in free_text or "\t" in free_text or "\n" in free_text or "\r" in free_text:
        user_id, device_type = copy_text(user_id), copy_text(device_type)
        locale = None if locale is None else copy_text(locale)
    text = NULL if locale is None else locale
    return f"{user_id}\t{device_type}\t{ip}\t{device_id}\t{text}\t{version}\t{day_text}\n"
