"""The values that flow through the pipeline, from queue message to table row.

Immutable named tuples rather than frozen dataclasses: three are built per message, and a
named tuple is cheaper to build. The hot paths build them with ``new_tuple(cls, values)``,
which is what the generated ``__new__`` does, without its Python frame (docs/instructions.md,
"Rows as named tuples")."""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from login_etl.domain.errors import InvalidMessageError

new_tuple = tuple.__new__  # new_tuple(SomeNamedTuple, (field, ...)): every field, in order


class QueueMessage(NamedTuple):
    """One SQS message, whichever trigger delivered it (event source mapping or drain)."""

    message_id: str
    body: str
    sent_timestamp_ms: str | None = None
    group_id: str | None = None  # MessageGroupId, only on FIFO queues
    # Why the record itself is unusable (a null body, a numeric SentTimestamp...): it fails.
    defect: InvalidMessageError | None = None


class LoginEvent(NamedTuple):
    """A validated login: every field checked, the IP in canonical form, PII still clear."""

    user_id: str
    device_type: str
    ip: str
    locale: str | None
    app_version: int
    device_id: str


class UserLoginRow(NamedTuple):
    """One row of ``user_logins``, in column order, PII masked."""

    user_id: str
    device_type: str
    masked_ip: str
    masked_device_id: str
    locale: str | None
    app_version: int
    create_date: date
