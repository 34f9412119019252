"""``login-etl report``: what analysts will see (no value is unmasked)."""

from __future__ import annotations

import argparse
from typing import Any

from login_etl_tools.commands.common import database
from login_etl_tools.report import build_report, render


def register(commands: Any) -> None:
    """Add ``report`` to the subcommands."""
    report = commands.add_parser(
        "report", help="row counts, duplicate devices and IPs, logins per day and app version"
    )
    report.add_argument("--top", type=int, default=5, help="rows per ranking")
    report.set_defaults(command=report_command)


def report_command(args: argparse.Namespace) -> int:
    """Print the report of DATABASE_URL's user_logins."""
    with database() as conn:
        print(render(build_report(conn, args.top)))
    return 0
