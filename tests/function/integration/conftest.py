"""Fixtures of the function's integration tests (the stack's fixtures: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pg8000.native
import pytest

from login_etl.adapters.postgres.schema import ensure_schema
from login_etl.adapters.postgres.store import PostgresLoginStore
from login_etl.adapters.postgres.transaction import Session
from tests.postgres_helpers import params


@pytest.fixture
def store(db: pg8000.native.Connection) -> Iterator[PostgresLoginStore]:
    """A store on the stack's database, as the function connects to it."""
    made = PostgresLoginStore(params())
    yield made
    made.close()


@pytest.fixture
def tables(db: pg8000.native.Connection) -> pg8000.native.Connection:
    """``db``, with the function's tables made as its cold start makes them."""
    ensure_schema(Session(db))
    return db
