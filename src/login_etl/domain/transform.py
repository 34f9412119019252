"""A validated ``LoginEvent`` plus its delivery metadata -> one masked ``UserLoginRow``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from login_etl.domain.errors import InvalidMessageError, Reason
from login_etl.domain.models import LoginEvent, UserLoginRow

_MS_PER_DAY = 86_400_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_MS = (date(9999, 12, 31).toordinal() - _EPOCH_ORDINAL) * _MS_PER_DAY
_MAX_DIGITS = len(str(_MAX_MS))


def create_date(sent_timestamp_ms: str | None, today: date) -> date:
    """UTC date the message was sent, so a replay writes the same date; ``today`` if unknown.

    Unix time has no leap seconds, so whole days since the epoch are exact UTC dates.
    """
    if sent_timestamp_ms is None:
        return today
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
    return date.fromordinal(_EPOCH_ORDINAL + millis // _MS_PER_DAY)


def to_row(event: LoginEvent, mask: Callable[[str], str], day: date) -> UserLoginRow:
    """Mask the two PII fields; everything else is copied as validated."""
    return UserLoginRow(
        user_id=event.user_id,
        device_type=event.device_type,
        masked_ip=mask(event.ip),
        masked_device_id=mask(event.device_id),
        locale=event.locale,
        app_version=event.app_version,
        create_date=day,
    )
