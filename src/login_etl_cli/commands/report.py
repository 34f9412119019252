"""``login-etl report``: what analysts will see (no value is unmasked)."""

from __future__ import annotations

import argparse
from typing import Any

from login_etl_cli.commands.arguments import add_command, int_between
from login_etl_cli.commands.common import POSTGRES, database
from login_etl_cli.report import build_report, render


def register(commands: Any) -> None:
    """Add ``report`` to the subcommands."""
    report = add_command(
        commands,
        "report",
        "row counts, duplicate devices and IPs, logins per day and app version",
        "Tokens are shortened unless --full-tokens is given; a full token can be passed to\n"
        "'login-etl unmask' (audited). App versions are shown decoded (2.3.0).",
    )
    report.add_argument("--top", type=int_between(1, 10_000), default=5, help="rows per ranking")
    report.add_argument(
        "--full-tokens",
        action="store_true",
        help="print whole masked_device_id / masked_ip tokens (to paste into unmask)",
    )
    report.set_defaults(command=report_command, needs=(POSTGRES,))


def report_command(args: argparse.Namespace) -> int:
    """Print the report of DATABASE_URL's user_logins."""
    with database() as conn:
        print(render(build_report(conn, args.top), full_tokens=args.full_tokens))
    return 0
