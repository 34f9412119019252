"""login-etl: run, inspect and operate the pipeline, locally or against AWS.

Every command acts on the stack the environment names (AWS_ENDPOINT_URL, DATABASE_URL,
QUEUE_URL, DLQ_URL, DATA_KEY_PARAMETER), else on the one 'login-etl stack up' left running,
and says which on stderr before it acts. With neither, it refuses; only 'run' then starts a
throwaway stack of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Collection, Sequence

from login_etl_cli.commands.arguments import HelpFormatter, Parser, add_debug
from login_etl_cli.commands.common import target_stack
from login_etl_cli.commands.registry import named_command, register_all
from login_etl_cli.errors import explain
from login_etl_cli.signals import Terminated, clean_exits, received_signal

BROKEN_PIPE_EXIT = 128 + signal.SIGPIPE  # what a shell reports for `cat big | head -1`


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``login-etl`` console script."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    named = named_command(arguments)
    args = parser(load=[named] if named else []).parse_args(arguments)
    with clean_exits():
        try:
            code = _dispatch(args)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
        except BrokenPipeError:
            return _reader_went_away()
        except (Terminated, KeyboardInterrupt) as stop:
            return _stopped(stop)
        except Exception as error:
            if received_signal() is not None:  # a child killed by the same Ctrl-C, say
                return _stopped(Terminated(received_signal() or signal.SIGINT))
            if args.debug:
                raise
            print(f"login-etl: {explain(error)}", file=sys.stderr)
            return 1
        return code


def _dispatch(args: argparse.Namespace) -> int:
    check = getattr(args, "check", None)
    if check is not None:  # the arguments first: nothing is looked up for a wrong one
        check(args)
    if args.needs is None:  # run and stack choose their stack themselves
        return int(args.command(args))
    with target_stack(args.needs, getattr(args, "database_why", "")):
        return int(args.command(args))


def _stopped(stop: BaseException) -> int:
    """One line, whatever was running when the signal came (initdb's error included)."""
    signum = stop.signum if isinstance(stop, Terminated) else signal.SIGINT
    name = signal.Signals(signum).name
    what = "interrupted" if signum == signal.SIGINT else f"stopped by {name}"
    with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
        print(f"login-etl: {what}; nothing it started is left running", file=sys.stderr)
    return 128 + signum


def _reader_went_away() -> int:
    """`login-etl dlq show | head -1`: the reader has what it wanted; say nothing.

    stdout now points at /dev/null, so that the interpreter's own flush at exit does not
    raise (and print) the same error again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return BROKEN_PIPE_EXIT


def parser(load: Collection[str] = ()) -> argparse.ArgumentParser:
    """Every subcommand, each registered by its module (``stack``, ``run``: only if in ``load``)."""
    doc = __doc__ or ""
    top = Parser(
        prog="login-etl",
        description=doc.split("\n", 1)[1].strip(),
        formatter_class=HelpFormatter,
    )
    add_debug(top, default=False)
    top.set_defaults(needs=None)
    commands = top.add_subparsers(required=True, metavar="COMMAND", parser_class=Parser)
    register_all(commands, load)
    return top


if __name__ == "__main__":
    sys.exit(main())
