"""Rows as the text format of ``COPY ... FROM STDIN``: one line a row, fields tab-separated."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from login_etl.adapters.postgres.schema import copy_text
from login_etl.domain.models import UserLoginRow

NULL = "\\N"


def copy_payload(rows: Sequence[UserLoginRow]) -> bytes:
    """The rows as one ``COPY`` text payload (empty for no rows).

    Written in one comprehension, then checked at once: free text that needs escaping (a tab,
    a newline, a carriage return or a backslash in a user id, device type or locale) is rare,
    and changes the counts of those characters, so the payload is then made again line by line
    with ``copy_line``. Tokens, versions and dates never need escaping. A call per row was most
    of this function's cost (docs/instructions.md, "COPY lines").
    """
    day_text = {day: day.isoformat() for day in set(map(_DAY, rows))}  # a batch has few
    text = "".join(
        [
            f"{user_id}\t{device_type}\t{ip}\t{device_id}\t"
            f"{NULL if locale is None else locale}\t{version}\t{day_text[day]}\n"
            for user_id, device_type, ip, device_id, locale, version, day in rows
        ]
    )
    lines = len(rows)
    if (
        text.count("\n") != lines
        or text.count("\t") != 6 * lines
        or "\r" in text
        or text.count("\\") != list(map(_LOCALE, rows)).count(None)
    ):
        text = "".join(map(copy_line, rows))
    return text.encode("utf-8")


_DAY = itemgetter(6)  # UserLoginRow.create_date
_LOCALE = itemgetter(4)  # UserLoginRow.locale


def copy_line(row: UserLoginRow) -> str:
    """One line of COPY's text format, its free text escaped: the rare line that needs it."""
    user_id, device_type, ip, device_id, locale, version, day = row
    text = NULL if locale is None else copy_text(locale)
    return (
        f"{copy_text(user_id)}\t{copy_text(device_type)}\t{ip}\t{device_id}\t{text}\t"
        f"{version}\t{day.isoformat()}\n"
    )
