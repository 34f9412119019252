"""``login-etl stack up | down | status``: the local stack, kept running between commands."""

from __future__ import annotations

import argparse
from typing import Any

from login_etl_tools.commands.common import UserError, redact
from login_etl_tools.stack_state import read_state, stack_down, stack_up


def register(commands: Any) -> None:
    """Add ``stack`` to the subcommands."""
    stack = commands.add_parser(
        "stack",
        help="start, stop or inspect the local stack (moto server + throwaway Postgres)",
        description="`up` prints export lines to paste into your shell; the other commands"
        " find the stack without them too.",
    )
    stack.add_argument("action", choices=("up", "down", "status"))
    stack.add_argument("--max-receive-count", type=int, default=5, help="redrive maxReceiveCount")
    stack.set_defaults(command=stack_command)


def stack_command(args: argparse.Namespace) -> int:
    """Dispatch to up, down or status."""
    if args.action == "up":
        running, started = stack_up(args.max_receive_count)
        print(f"# local stack {'started' if started else 'already running'}; paste to use it:")
        for name, value in running.environment().items():
            print(f"export {name}={value}")
        return 0
    if args.action == "down":
        print("local stack stopped" if stack_down() else "no local stack was running")
        return 0
    state = read_state()
    if state is None:
        raise UserError("no local stack: start one with `login-etl stack up`")
    moto_up, postgres_up = state.is_up()
    running = state.stack()
    print(f"moto server  {'up  ' if moto_up else 'DOWN'}  {running.aws_endpoint_url}")
    print(f"PostgreSQL   {'up  ' if postgres_up else 'DOWN'}  {redact(running.database_url)}")
    print(f"queue        {running.provisioned.queue_url}")
    print(f"dead letters {running.provisioned.dlq_url}")
    if not (moto_up and postgres_up):
        print("restart with `login-etl stack down && login-etl stack up`")
        return 1
    return 0
