"""Rows as the text format of ``COPY ... FROM STDIN``: one line a row, fields tab-separated."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

from login_etl.adapters.postgres.schema import copy_text
from login_etl.domain.models import UserLoginRow

NULL = "\\N"


def copy_payload(rows: Sequence[UserLoginRow]) -> bytes:
    """The rows as one ``COPY`` text payload (empty for no rows).

    Made column by column: every line is one ``str.join`` of its fields, called by ``map``,
    so there is no Python step per row (docs/instructions.md, "COPY lines"). Free text that
    needs escaping (a tab, a newline, a carriage return or a backslash in a user id, device
    type or locale) is rare: it is looked for at once, in those columns joined, and a batch
    that has some is written line by line with ``copy_line``. Tokens, versions and dates never
    need escaping.
    """
    if not rows:
        return b""
    user_ids, device_types, ips, device_ids, locales, versions, days = zip(*rows, strict=True)
    free_text = "".join(chain(user_ids, device_types, filter(None, locales)))
    if any(special in free_text for special in _SPECIAL):
        return "".join(map(copy_line, rows)).encode("utf-8")
    day_text = {day: day.isoformat() for day in set(days)}  # a batch has few
    fields = zip(
        user_ids,
        device_types,
        ips,
        device_ids,
        [NULL if locale is None else locale for locale in locales],
        map(str, versions),
        map(day_text.__getitem__, days),
        strict=True,
    )
    return ("\n".join(map("\t".join, fields)) + "\n").encode("utf-8")


# What COPY's text format reads specially in a field. A search for each (``in``: a memchr)
# costs far less than counting them in the payload (docs/instructions.md, "COPY lines").
_SPECIAL = ("\\", "\t", "\n", "\r")


def copy_line(row: UserLoginRow) -> str:
    """One line of COPY's text format, its free text escaped: the rare line that needs it."""
    user_id, device_type, ip, device_id, locale, version, day = row
    text = NULL if locale is None else copy_text(locale)
    return (
        f"{copy_text(user_id)}\t{copy_text(device_type)}\t{ip}\t{device_id}\t{text}\t"
        f"{version}\t{day.isoformat()}\n"
    )
