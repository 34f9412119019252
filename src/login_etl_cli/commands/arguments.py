"""Arguments checked before anything is done, and ``--help`` that shows the defaults.

A value out of range is refused by the parser (exit 2, one line naming the option), not found
out half-way: ``--count -5`` used to send nothing and exit 0, ``--top -1`` reached Postgres as
``LIMIT -1``, a binary ``--file`` raised ``UnicodeDecodeError`` after the stack had started.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from login_etl_cli.seeding import bodies_from_text


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (their lists stay lists), every real default shown."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default in (None, False, argparse.SUPPRESS, [])
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """One line on a usage error, naming the command, then exit 2 (the usage-error code)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


DEBUG_HELP = "show tracebacks"


def add_debug(parser: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> None:
    """``--debug``, anywhere on the line: ``login-etl report --debug`` as ``login-etl --debug
    report``. A subcommand's leaves the value alone unless given (``SUPPRESS``), so that one
    given before the subcommand is not reset by the subcommand's default.
    """
    parser.add_argument("--debug", action="store_true", default=default, help=DEBUG_HELP)


def add_command(commands: Any, name: str, summary: str, description: str = "") -> Parser:
    """A subcommand with ``summary`` in its parent's list and ``description`` in its --help."""
    parser: Parser = commands.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.\n\n{description}".strip(),
        formatter_class=HelpFormatter,
    )
    add_debug(parser)
    return parser


def actions(parser: Parser) -> Any:
    """The actions of a command (``stack up``, ``dlq show``), each with its own --help."""
    return parser.add_subparsers(
        title="actions", metavar="ACTION", required=True, parser_class=Parser
    )


def int_between(low: int, high: int | None = None) -> Callable[[str], int]:
    """A whole number in [low, high] (no upper bound if ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low:,} and {high:,}" if high is not None else f"{low:,} or more"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    parse.__name__ = "whole number"
    return parse


def ratio(text: str) -> float:
    """A share, 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (a share), got {text}")
    return value


def message_file(text: str) -> list[str]:
    """The message bodies of a JSON array or JSON-lines file, read and checked now."""
    path = Path(text)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise argparse.ArgumentTypeError(f"{text}: no such file") from None
    except IsADirectoryError:
        raise argparse.ArgumentTypeError(f"{text} is a directory, not a file") from None
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {error.strerror}") from None
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise argparse.ArgumentTypeError(
            f"{text} is not UTF-8 text (byte {raw[error.start]:#04x} at offset {error.start}):"
            " give a JSON array of messages or one message per line"
        ) from None
    try:
        bodies = bodies_from_text(content)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text}: {error}") from None
    if not bodies:
        raise argparse.ArgumentTypeError(f"{text} holds no messages")
    return bodies


DEFAULT_SEED = 20221201


def add_message_source(parser: Parser) -> Any:
    """``--count`` or ``--file``, and ``--seed``: what ``seed`` and ``run`` send (one place).

    Returns the exclusive group, for a command that has a third source (``run --no-seed``).
    """
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--count", type=int_between(1), default=1000, help="generated messages to send"
    )
    source.add_argument(
        "--file",
        type=message_file,
        metavar="FILE",
        help="send the messages of this JSON array / JSON-lines file instead",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    return source
