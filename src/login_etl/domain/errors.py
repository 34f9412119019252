"""Why a message is rejected, in words that are safe to log: field names, never values."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Stable reason codes, used as a log field and as the failure metric's dimension."""

    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_KEYS = "missing_keys"
    UNEXPECTED_KEYS = "unexpected_keys"
    WRONG_TYPE = "wrong_type"
    EMPTY_VALUE = "empty_value"
    TOO_LONG = "too_long"
    BAD_CHARACTERS = "bad_characters"
    INVALID_IP = "invalid_ip"
    INVALID_APP_VERSION = "invalid_app_version"
    INVALID_SENT_TIMESTAMP = "invalid_sent_timestamp"
    MALFORMED_RECORD = "malformed_record"  # the SQS record itself, not its body
    REJECTED_BY_DATABASE = "rejected_by_database"
    EARLIER_IN_GROUP_FAILED = "earlier_in_group_failed"


class InvalidMessageError(ValueError):
    """A message that can never become a row. ``detail`` names fields only, never their values."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
