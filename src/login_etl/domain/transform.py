"""A validated ``LoginEvent`` plus its delivery metadata -> one masked ``UserLoginRow``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from itertools import chain
from operator import itemgetter

from login_etl.domain.errors import InvalidMessageError, Reason
from login_etl.domain.masking import TokensOf
from login_etl.domain.models import LoginEvent, UserLoginRow, new_tuple

_MS_PER_DAY = 86_400_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_MS = (date(9999, 12, 31).toordinal() - _EPOCH_ORDINAL) * _MS_PER_DAY
_MAX_DIGITS = len(str(_MAX_MS))


# Day number -> date: a batch spans a day or two, and date.fromordinal was a large part of
# this function (docs/instructions.md, "create_date"). Bounded, though it grows by one entry
# a day.
_DATES: dict[int, date] = {}
_DATES_MAX = 1_024
# The day of the last timestamp: its first millisecond and the next day's, as decimal text of
# the same length (compared as text, equal-length digit strings order as numbers) and the date.
# Most timestamps of a batch fall in it, and skip the conversion (docs/instructions.md,
# "create_date").
_last_day: tuple[str, str, date | None] = ("", "", None)


def create_date(sent_timestamp_ms: str | None, today: date) -> date:
    """UTC date the message was sent, so a replay writes the same date; ``today`` if unknown.

    Unix time has no leap seconds, so whole days since the epoch are exact UTC dates.
    """
    if sent_timestamp_ms is None:
        return today
    first, after, known = _last_day
    if (
        first <= sent_timestamp_ms < after
        and len(sent_timestamp_ms) == len(first)
        and sent_timestamp_ms.isdecimal()
        and sent_timestamp_ms.isascii()
        and known is not None
    ):
        return known
    return _create_date(sent_timestamp_ms)


def _create_date(sent_timestamp_ms: str) -> date:
    global _last_day  # noqa: PLW0603 - a one-entry cache
    if not sent_timestamp_ms.isdecimal() or not sent_timestamp_ms.isascii():
        raise InvalidMessageError(Reason.INVALID_SENT_TIMESTAMP, "SentTimestamp is not an integer")
    digits = sent_timestamp_ms
    if len(digits) > _MAX_DIGITS:
        # int() raises ValueError beyond 4,300 digits (Python 3.11+, CVE-2020-10735): what no
        # date fits in is out of range without being converted.
        digits = digits.lstrip("0") or "0"
        if len(digits) > _MAX_DIGITS:
            raise InvalidMessageError(
                Reason.INVALID_SENT_TIMESTAMP, "SentTimestamp is out of range"
            )
    millis = int(digits)
    if millis > _MAX_MS:
        raise InvalidMessageError(Reason.INVALID_SENT_TIMESTAMP, "SentTimestamp is out of range")
    number = millis // _MS_PER_DAY
    day = _DATES.get(number)
    if day is None:
        day = date.fromordinal(_EPOCH_ORDINAL + number)
        if len(_DATES) < _DATES_MAX:
            _DATES[number] = day
    first, after = str(number * _MS_PER_DAY), str((number + 1) * _MS_PER_DAY)
    if len(first) == len(after) == len(sent_timestamp_ms):
        _last_day = (first, after, day)
    return day


def to_rows(
    valid: Mapping[str, tuple[LoginEvent, date]], tokens_of: TokensOf
) -> dict[str, UserLoginRow]:
    """The row of each valid login, by message id: the two PII fields masked, the rest as
    validated.

    The tokens of the whole batch are asked for at once (``TokenMemo``: each distinct value
    masked once, in one batched call), then each row is one tuple: no call per message
    (docs/instructions.md, "Masking").
    """
    events = list(map(_EVENT, valid.values()))
    tokens = tokens_of(chain(map(_IP, events), map(_DEVICE_ID, events)))
    return {
        message_id: new_tuple(
            UserLoginRow,
            (user_id, device_type, tokens[ip], tokens[device_id], locale, version, day),
        )
        for message_id, ((user_id, device_type, ip, locale, version, device_id), day) in (
            valid.items()
        )
    }


_EVENT = itemgetter(0)
_IP = itemgetter(2)  # LoginEvent.ip
_DEVICE_ID = itemgetter(5)  # LoginEvent.device_id
