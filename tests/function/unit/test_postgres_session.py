"""Which server process a client that gives up ends: only its own transaction's."""

from __future__ import annotations

from typing import Any

import pytest

from login_etl.adapters import postgres_connection
from login_etl.adapters.postgres_connection import ConnectionParams, Session, begin_session

PARAMS = ConnectionParams("db.invalid", 5432, "u", "pw", "d")


class LineLost:
    """A connection whose line drops at the next statement."""

    def run(self, *_: Any, **__: Any) -> Any:
        raise OSError("connection reset")


def test_a_begin_that_never_answers_leaves_no_stale_process_to_end() -> None:
    """Behind RDS Proxy, the previous transaction's process may serve another client now."""
    session = Session(LineLost(), backend_pid=4242, params=PARAMS)
    with pytest.raises(OSError, match="reset"):
        begin_session(session)
    assert session.backend_pid == 0


def test_ending_process_zero_opens_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[ConnectionParams] = []
    monkeypatch.setattr(postgres_connection, "connect", opened.append)
    postgres_connection.end_backend(PARAMS, 0)
    assert opened == []
