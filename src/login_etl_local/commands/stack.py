"""``login-etl stack up | down | status``: the local stack, kept running between commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from login_etl_cli.commands.arguments import actions, add_command, int_between
from login_etl_cli.commands.common import UserError, redact
from login_etl_local.extra import require_local_extra
from login_etl_local.stack_record import (
    STACK_DIR_NAME,
    STATE_NAME,
    LocalStack,
    StackRecord,
    leftovers,
    read_state,
    stack_dir,
)
from login_etl_local.stack_state import HalfDownError, stack_down, stack_up


def register(commands: Any, summary: str) -> None:
    """Add ``stack`` to the subcommands (``summary``: the one ``login-etl --help`` lists)."""
    stack = add_command(
        commands,
        "stack",
        summary,
        "The stack keeps running between commands; it is recorded in"
        f" {STACK_DIR_NAME}/{STATE_NAME}\nat the project's root (the nearest directory above with"
        " .git or pyproject.toml, or\nthe nearest with a .local-stack), where the other commands"
        " find it from any\nsubdirectory when the environment names no stack of its own.",
    )
    action = actions(stack)
    up = add_command(
        action,
        "up",
        "start the local stack, or find the running one, and print its export lines",
        "Starts a moto server and a throwaway PostgreSQL on free loopback ports, creates\n"
        "the queue, its dead-letter queue, the KMS key and the data key, and prints\n"
        "'export' lines (eval \"$(login-etl stack up)\" sets them). A stack that is only\n"
        "half up is reported, not replaced: its data would be lost.",
    )
    up.add_argument(
        "--max-receive-count",
        type=int_between(1, 1000),
        default=5,
        help="deliveries before a message is dead-lettered (the redrive policy)",
    )
    up.add_argument(
        "--replace",
        action="store_true",
        help="if the recorded stack is half down: stop what is left of it, delete its data,"
        " start a new one",
    )
    up.set_defaults(command=_up)
    down = add_command(
        action,
        "down",
        "stop the local stack and delete its data",
        "Also stops what a killed 'login-etl run' left behind (its throwaway stack).",
    )
    down.set_defaults(command=_down)
    status = add_command(
        action,
        "status",
        "show whether the local stack's servers answer, and where",
        "Exit code 0 if both servers answer, 1 otherwise. Also lists what killed\n"
        "'login-etl run' commands left behind.",
    )
    status.set_defaults(command=_status)


def _say(step: str) -> None:
    print(f"  {step} ...", file=sys.stderr, flush=True)


def _say_where() -> None:
    """The stack's directory, when it is not this one's (a subdirectory of the project)."""
    directory = stack_dir()
    if directory.parent != Path.cwd().absolute():
        print(f"login-etl: the local stack of {directory}", file=sys.stderr, flush=True)


def _up(args: argparse.Namespace) -> int:
    require_local_extra()
    _say_where()
    try:
        running, started = stack_up(args.max_receive_count, replace=args.replace, on_step=_say)
    except HalfDownError as error:
        raise UserError(str(error)) from None
    print(f"# local stack {'started' if started else 'already running'}; paste to use it:")
    for name, value in running.environment().items():
        print(f"export {name}={value}")
    return 0


def _down(args: argparse.Namespace) -> int:  # noqa: ARG001 - no options
    stopped = stack_down()
    if stopped.stack is not None:
        print("local stack stopped")
    for record in stopped.leftovers:
        print(f"stopped what a killed login-etl run (pid {record.owner_pid}) left running")
    for pid in stopped.still_running:
        print(f"left the throwaway stack of login-etl run (pid {pid}): it is still running")
    if stopped.stack is None and not stopped.leftovers:
        print("no local stack was running")
    return 0


def _status(args: argparse.Namespace) -> int:  # noqa: ARG001 - no options
    state = read_state()
    found = leftovers()
    if state is None and not found:
        raise UserError("no local stack: start one with `login-etl stack up`")
    for path, record in found:
        print(f"left by a killed login-etl run (pid {record.owner_pid}, {path}):")
        print(f"  {record.describe()}: `login-etl stack down` stops it")
    if state is None:
        return 1
    return _show(state)


def _show(state: StackRecord) -> int:
    moto_up, postgres_up = state.is_up()
    if not state.complete:
        print(f"local stack, never finished starting: {state.describe()}")
        print("clean up with `login-etl stack down`")
        return 1
    running = LocalStack.from_record(state)
    print(f"moto server  {'up  ' if moto_up else 'DOWN'}  {running.aws_endpoint_url}")
    print(f"PostgreSQL   {'up  ' if postgres_up else 'DOWN'}  {redact(running.database_url)}")
    print(f"queue        {running.provisioned.queue_url}")
    print(f"dead letters {running.provisioned.dlq_url}")
    if not (moto_up and postgres_up):
        print("restart with `login-etl stack down && login-etl stack up`")
        return 1
    return 0
