"""``login-etl ledger prune``: forget ledger entries older than the retention window, by hand.

The deployed function does the same every hour (the template's ``PruneLedger`` rule); this is
for a database the function does not prune, or to catch up after changing the window.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import boto3

from login_etl.adapters.postgres.store import PostgresLoginStore
from login_etl.adapters.sqs_queue import queue_retention
from login_etl.config import Settings, connection_params_from_url
from login_etl.ledger_pruning import ledger_window
from login_etl_cli.commands.arguments import actions, add_command, int_between
from login_etl_cli.commands.common import POSTGRES, database_url


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
        "prunes hourly by itself. Needs DELETE on login_etl_processed_messages.",
    )
    prune.add_argument(
        "--batch-rows", type=int_between(1), default=5_000, help="entries per transaction"
    )
    prune.set_defaults(command=ledger_command, needs=(POSTGRES,))


def ledger_command(args: argparse.Namespace) -> int:
    """Prune, then say how many entries went and what the window was."""
    url = database_url("a user with DELETE on login_etl_processed_messages")
    # The retention and database settings, as the function reads them; no data key is used.
    settings = Settings.from_env({"DATA_KEY_CIPHERTEXT": "-", **os.environ})
    observed = None
    if settings.queue_url:
        observed = queue_retention(boto3.client("sqs"), settings.queue_url)
    window = ledger_window(
        settings.queue_retention_s,
        settings.dlq_retention_s,
        settings.ledger_retention_margin_s,
        observed,
    ).seconds
    store = PostgresLoginStore(connection_params_from_url(url, settings))
    try:
        deleted = store.prune(window, args.batch_rows, lambda: True)
    finally:
        store.close()
    days = window / 86_400
    print(f"deleted {deleted} ledger entries older than {days:g} days")
    return 0
