"""Fixtures of the benchmarks' tests that need the stack's real Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from benchmarks.ledger_state import admin_connection
from login_etl.adapters.postgres.connection import ConnectionParams
from login_etl_local.stack_record import LocalStack
from tests.postgres_helpers import params


@pytest.fixture
def ledger_database(stack: LocalStack) -> Iterator[ConnectionParams]:
    """A database of its own on the session's server, as ``make bench-ledger`` makes one."""
    name = f"bench_ledger_{uuid.uuid4().hex[:8]}"
    admin = admin_connection(params())
    admin.run(f"CREATE DATABASE {name}")
    yield params(database=name)
    admin.run(f"DROP DATABASE {name} WITH (FORCE)")
    admin.close()
