"""``login-etl ledger prune``: forget ledger entries older than the retention window, by hand.

The deployed function does the same every hour (the template's ``PruneLedger`` rule); this is
for a database the function does not prune, or to catch up after changing the window.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import boto3
import pg8000.native

from login_etl.adapters.postgres.schema import LEDGER, table_exists
from login_etl.adapters.postgres.store import PostgresLoginStore
from login_etl.adapters.sqs_queue import queue_retention
from login_etl.config import Settings, connection_params_from_url
from login_etl.ledger_pruning import ledger_window
from login_etl_cli.commands.arguments import actions, add_command, int_between
from login_etl_cli.commands.common import POSTGRES, UserError, database, database_url
from login_etl_cli.durations import duration, human


def register(commands: Any) -> None:
    """Add ``ledger`` to the subcommands."""
    ledger = add_command(commands, "ledger", "the exactly-once ledger: prune")
    prune = add_command(
        actions(ledger),
        "prune",
        "delete ledger entries older than the retention window",
        "The window is QUEUE_RETENTION_SECONDS + DLQ_RETENTION_SECONDS +\n"
        "LEDGER_RETENTION_MARGIN_SECONDS (29 days with the defaults), each retention never\n"
        "shorter than QUEUE_URL's and its DLQ's when they can be read; the deployed function\n"
        "prunes hourly by itself. Needs DELETE on login_etl_processed_messages.\n\n"
        "--older-than replaces the window, to try the prune on a local stack; against a\n"
        "real deployment (AWS_ENDPOINT_URL unset) a value below the window is refused: a\n"
        "message id would be forgotten while its message can still come back.",
    )
    prune.add_argument(
        "--batch-rows", type=int_between(1), default=5_000, help="entries per transaction"
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="count what would be deleted, delete nothing"
    )
    prune.add_argument(
        "--older-than",
        type=duration,
        metavar="DURATION",
        help="delete entries older than this (90s, 10m, 2h, 29d) instead of the window",
    )
    prune.set_defaults(command=ledger_command, needs=(POSTGRES,))


def ledger_command(args: argparse.Namespace) -> int:
    """Prune (or count, --dry-run), then say how many entries and what the window was."""
    url = database_url("a user with DELETE on login_etl_processed_messages")
    # The retention and database settings, as the function reads them; no data key is used.
    settings = Settings.from_env({"DATA_KEY_CIPHERTEXT": "-", **os.environ})
    window = _window(settings)
    older_than = window if args.older_than is None else args.older_than
    if older_than < window and not os.environ.get("AWS_ENDPOINT_URL"):
        raise UserError(
            f"--older-than {human(older_than)} is shorter than the queues' window"
            f" ({human(window)}): a message id would be forgotten while its message can still"
            " come back. Refused against a real deployment (AWS_ENDPOINT_URL unset); it is for"
            " a local stack"
        )
    if args.dry_run:
        with database() as conn:
            count = _older_entries(conn, older_than)
        print(f"would delete {count} ledger entries older than {human(older_than)} (dry run)")
        return 0
    store = PostgresLoginStore(connection_params_from_url(url, settings))
    try:
        deleted = store.prune(older_than, args.batch_rows, lambda: True)
    finally:
        store.close()
    print(f"deleted {deleted} ledger entries older than {human(older_than)}")
    return 0


def _window(settings: Settings) -> int:
    """The function's window: the settings, never shorter than QUEUE_URL's queues keep."""
    observed = None
    if settings.queue_url:
        observed = queue_retention(boto3.client("sqs"), settings.queue_url)
    return ledger_window(
        settings.queue_retention_s,
        settings.dlq_retention_s,
        settings.ledger_retention_margin_s,
        observed,
    ).seconds


def _older_entries(conn: pg8000.native.Connection, older_than: float) -> int:
    """Entries older than ``older_than`` (a full count: a dry run is asked for, not hourly)."""
    if not table_exists(conn, LEDGER):
        return 0
    return int(
        conn.run(
            f"SELECT count(*) FROM {LEDGER} WHERE processed_at < now()"  # noqa: S608 - a constant
            " - make_interval(secs => CAST(:seconds AS double precision))",
            seconds=older_than,
        )[0][0]
    )
