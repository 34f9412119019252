"""An in-memory store and sample bodies for the pipeline's unit tests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date

from login_etl.deadline import Deadline
from login_etl.domain.models import QueueMessage, UserLoginRow
from login_etl.ports import WriteResult

TODAY = date(2026, 11, 24)
GOOD = json.dumps(
    {
        "user_id": "u",
        "app_version": "1.0",
        "device_type": "ios",
        "ip": "1.2.3.4",
        "locale": None,
        "device_id": "111-22-3333",
    }
)
BAD = json.dumps({"foo": "oops_wrong_msg_type", "bar": "123"})


class MemoryStore:
    """A ledger and a table in memory, refusing the rows whose user_id is in ``refuse``."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.ledger: set[str] = set()
        self.rows: list[UserLoginRow] = []
        self.refuse = refuse
        self.calls: list[list[str]] = []

    def write(
        self, rows: Sequence[tuple[str, UserLoginRow]], deadline: Deadline | None = None
    ) -> WriteResult:
        self.calls.append([mid for mid, _ in rows])
        rejected = {mid: "22001" for mid, row in rows if row.user_id in self.refuse}
        if rejected:
            return WriteResult(rejected=rejected)
        new = [(mid, row) for mid, row in rows if mid not in self.ledger]
        self.ledger.update(mid for mid, _ in new)
        self.rows.extend(row for _, row in new)
        return WriteResult(written=len(new), duplicates=len(rows) - len(new))


def upper_tokens(values: Iterable[str]) -> dict[str, str]:
    """A stand-in for the masker's tokens: each value upper-cased."""
    return {value: value.upper() for value in values}


def msg(mid: str, body: str = GOOD, group: str | None = None) -> QueueMessage:
    return QueueMessage(mid, body, "1700000000000", group)


def login(user: str) -> str:
    return GOOD.replace('"u"', json.dumps(user))
