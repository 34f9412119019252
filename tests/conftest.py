"""Fixtures shared by the integration and end-to-end tests: one local stack per session."""

from __future__ import annotations

import io
import logging
import os
import uuid
from collections.abc import Iterator

import boto3
import pg8000.native
import pytest

from login_etl.adapters.postgres.connection import connect
from login_etl.config import Settings, connection_params_from_url
from login_etl.observability import logger
from login_etl.runtime import reset_runtime
from login_etl_local.provisioning import Provisioned, provision
from login_etl_local.stack import local_stack
from login_etl_local.stack_record import LocalStack, patched_environ


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """moto server + throwaway Postgres for the whole session, its variables in os.environ."""
    with (
        local_stack() as running,
        patched_environ({**running.environment(), "POWERTOOLS_METRICS_NAMESPACE": "LoginEtlTest"}),
    ):
        yield running
    reset_runtime()


@pytest.fixture
def db(stack: LocalStack) -> Iterator[pg8000.native.Connection]:
    """A connection to the stack's database, with the function's tables emptied first."""
    conn = connect(connection_params_from_url(stack.database_url, Settings.from_env()))
    conn.run("DROP VIEW IF EXISTS user_logins_decoded")
    # known_users: the referenced table of the deferred-refusal tests, whichever ran last.
    conn.run("DROP TABLE IF EXISTS user_logins, login_etl_processed_messages, known_users")
    reset_runtime()  # the handler's next cold start recreates the schema
    yield conn
    conn.close()
    reset_runtime()


@pytest.fixture
def queue(stack: LocalStack, request: pytest.FixtureRequest) -> Iterator[Provisioned]:
    """A fresh queue (and DLQ) of this test's own, maxReceiveCount from a marker or 5."""
    marker = request.node.get_closest_marker("max_receive_count")
    max_receive = marker.args[0] if marker else 5
    provisioned = provision(
        boto3.client("sqs"),
        boto3.client("kms"),
        boto3.client("ssm"),
        queue_name=f"login-queue-{uuid.uuid4().hex[:8]}",
        max_receive_count=max_receive,
    )
    with patched_environ({"QUEUE_URL": provisioned.queue_url}):
        yield provisioned


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "max_receive_count(n): redrive maxReceiveCount of `queue`")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "login-etl")


@pytest.fixture
def function_logs() -> Iterator[io.StringIO]:
    """Everything the function's Powertools logger writes, JSON formatted as in CloudWatch.

    The logger's own handler holds the ``sys.stdout`` of its import time, which neither capsys
    nor capfd sees; a second handler with the same formatter does.
    """
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    standard_logger = logging.getLogger(logger.name)  # the logging.Logger Powertools wraps
    standard_logger.addHandler(handler)
    yield buffer
    standard_logger.removeHandler(handler)
