"""``login-etl ledger prune``: tried locally (--dry-run, --older-than), never too short on AWS."""

from __future__ import annotations

from pathlib import Path

import pg8000.native
import pytest

from login_etl.adapters.postgres.schema import CREATE_LEDGER
from login_etl_cli.durations import duration, human
from login_etl_local.stack_record import LocalStack
from tests.cli_helpers import login_etl, without_target_line

LEDGER_COUNT = "SELECT count(*) FROM login_etl_processed_messages"


@pytest.fixture
def ledger(db: pg8000.native.Connection) -> pg8000.native.Connection:
    """30 entries ten minutes old and one new."""
    db.run(CREATE_LEDGER)
    db.run(
        "INSERT INTO login_etl_processed_messages (message_id, processed_at)"
        " SELECT 'old-' || n, now() - interval '10 minutes' FROM generate_series(1, 30) n"
    )
    db.run("INSERT INTO login_etl_processed_messages (message_id) VALUES ('recent')")
    return db


def test_a_dry_run_counts_and_older_than_prunes_on_the_local_stack(
    stack: LocalStack, ledger: pg8000.native.Connection, tmp_path: Path
) -> None:
    env = stack.environment()  # AWS_ENDPOINT_URL set: a local stack

    dry = login_etl("ledger", "prune", "--older-than", "5m", "--dry-run", cwd=tmp_path, env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == "would delete 30 ledger entries older than 5 min (dry run)\n"
    assert ledger.run(LEDGER_COUNT) == [[31]]

    pruned = login_etl("ledger", "prune", "--older-than", "5m", cwd=tmp_path, env=env)
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout == "deleted 30 ledger entries older than 5 min\n"
    assert ledger.run(LEDGER_COUNT) == [[1]]


def test_older_than_below_the_window_is_refused_against_a_deployment(
    stack: LocalStack, ledger: pg8000.native.Connection, tmp_path: Path
) -> None:
    # DATABASE_URL alone, no AWS_ENDPOINT_URL: what an operator sets against AWS.
    env = {"DATABASE_URL": stack.database_url}

    refused = login_etl("ledger", "prune", "--older-than", "5m", cwd=tmp_path, env=env)

    assert refused.returncode == 1
    assert without_target_line(refused.stderr) == (
        "login-etl: --older-than 5 min is shorter than the queues' window (29 days): a message"
        " id would be forgotten while its message can still come back. Refused against a real"
        " deployment (AWS_ENDPOINT_URL unset); it is for a local stack\n"
    )
    assert ledger.run(LEDGER_COUNT) == [[31]]


def test_the_window_is_said_in_human_units(
    stack: LocalStack, ledger: pg8000.native.Connection, tmp_path: Path
) -> None:
    minimum = {  # the settings at SQS's minimum retention, no queue to read
        "DATABASE_URL": stack.database_url,
        "QUEUE_RETENTION_SECONDS": "60",
        "DLQ_RETENTION_SECONDS": "60",
        "LEDGER_RETENTION_MARGIN_SECONDS": "60",
    }

    pruned = login_etl("ledger", "prune", cwd=tmp_path, env=minimum)

    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout == "deleted 30 ledger entries older than 3 min\n"  # not 0.00208333 days


@pytest.mark.parametrize(
    ("text", "seconds", "shown"),
    [
        ("90", 90, "1 min 30 s"),
        ("10m", 600, "10 min"),
        ("2h", 7_200, "2 h"),
        ("29d", 2_505_600, "29 days"),
        ("1d", 86_400, "1 day"),
    ],
)
def test_durations_read_and_said(text: str, seconds: float, shown: str) -> None:
    assert duration(text) == seconds
    assert human(seconds) == shown


def test_a_wrong_duration_is_a_wrong_argument(tmp_path: Path) -> None:
    result = login_etl("ledger", "prune", "--older-than", "soon", cwd=tmp_path)

    assert result.returncode == 2
    assert "argument --older-than: not a duration: 'soon'" in result.stderr
