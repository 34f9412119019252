"""Shared set-ups of the tests against the stack's real Postgres."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

import pg8000.native

from login_etl.adapters.postgres.connection import ConnectionParams
from login_etl.adapters.postgres.store import PostgresLoginStore
from login_etl.config import Settings
from login_etl.domain.models import QueueMessage, UserLoginRow
from login_etl.pipeline import BatchOutcome, process_batch
from login_etl.runtime import connection_params
from login_etl_cli.sample_data import generate_labelled

DAY = date(2026, 11, 24)
GIVEN_TABLE = (
    "CREATE TABLE user_logins(user_id varchar(128) {extra}, device_type varchar(32),"
    " masked_ip varchar(256), masked_device_id varchar(256), locale varchar(32),"
    " app_version integer, create_date date {table_extra})"
)


def given_table(db: pg8000.native.Connection, extra: str = "", table_extra: str = "") -> None:
    """The assignment's table, as a DBA may already have made it (with constraints of theirs)."""
    db.run(GIVEN_TABLE.format(extra=extra, table_extra=table_extra))


def row(user_id: str, locale: str | None = "RU") -> UserLoginRow:
    return UserLoginRow(user_id, "ios", "mip", "mdev", locale, 2_003_000, DAY)


def count(db: pg8000.native.Connection, sql: str) -> int:
    return int(db.run(sql)[0][0])


def params(**overrides: Any) -> ConnectionParams:
    """The stack's database as the function connects to it, with ``overrides``."""
    return replace(connection_params(Settings.from_env()), **overrides)


def ledger(db: pg8000.native.Connection) -> set[str]:
    return {r[0] for r in db.run("SELECT message_id FROM login_etl_processed_messages")}


def batch(size: int, seed: int, locales: dict[int, str] | None = None) -> list[QueueMessage]:
    """``size`` valid logins; ``locales`` overrides the locale of some (by position)."""
    logins = [json.loads(b) for b, _ in generate_labelled(size, seed, malformed_ratio=0)]
    for position, locale in (locales or {}).items():
        logins[position]["locale"] = locale
    return [QueueMessage(f"s{seed}-{i:05}", json.dumps(x)) for i, x in enumerate(logins)]


def write(
    messages: list[QueueMessage],
    mask: Callable[[str], str] = str.upper,
    connect_as: ConnectionParams | None = None,
) -> BatchOutcome:
    """``process_batch`` on a store of its own, closed after; ``mask`` makes each token."""
    store = PostgresLoginStore(connect_as or params())
    try:
        return process_batch(messages, lambda values: {v: mask(v) for v in values}, store, DAY)
    finally:
        store.close()


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    """Poll a condition (never a fixed sleep): the machine may be slow."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def function_sessions(db: pg8000.native.Connection) -> int:
    """Sessions of the function other than ``db``'s own (both say application login-etl)."""
    return count(
        db,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'login-etl' AND pid <> pg_backend_pid()",
    )


def waiting_on_a_lock(monitor: pg8000.native.Connection) -> int:
    return count(
        monitor,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'login-etl' AND wait_event_type = 'Lock'",
    )


def login_body(user: str, locale: str = "RU") -> str:
    """A valid login body (the take-home's example) for ``user``."""
    return json.dumps(
        {
            "user_id": user,
            "app_version": "2.3.0",
            "device_type": "android",
            "ip": "199.172.111.135",
            "locale": locale,
            "device_id": "593-47-5928",
        }
    )


def another_application() -> pg8000.native.Connection:
    """A connection to the stack's database that is not the function's (another app's name)."""
    target = params()
    return pg8000.native.Connection(
        user=target.user,
        password=target.password,
        host=target.host,
        port=target.port,
        database=target.database,
        application_name="another-application",
    )
