"""--help: each action explained, defaults shown, no Markdown backticks, run names its stack."""

from __future__ import annotations

import argparse

import pytest

from login_etl_cli import main as cli
from login_etl_cli.commands.registry import plugged_commands


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def every_parser() -> dict[str, argparse.ArgumentParser]:
    found = {}
    pending = [("login-etl", cli.parser(load=plugged_commands()))]
    while pending:
        name, parser = pending.pop()
        found[name] = parser
        pending += [(f"{name} {sub}", p) for sub, p in subparsers(parser).items()]
    return found


PARSERS = every_parser()


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_help_has_no_backticks_and_shows_every_default(name: str) -> None:
    parser = PARSERS[name]
    text = parser.format_help()

    assert "`" not in text
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS, []):
            assert f"(default: {action.default})" in " ".join(text.split()), action.dest


@pytest.mark.parametrize(
    ("command", "actions"),
    [
        ("stack", ["up", "down", "status"]),
        ("dlq", ["show", "redrive"]),
        ("keys", ["init", "rotate", "list"]),
        ("db", ["init"]),
    ],
)
def test_each_action_is_explained(command: str, actions: list[str]) -> None:
    parser = PARSERS[f"login-etl {command}"]
    text = parser.format_help()

    assert sorted(subparsers(parser)) == sorted(actions)
    for action in actions:
        [line] = [line for line in text.splitlines() if line.strip().startswith(action + " ")]
        assert len(line.split()) > 3, f"{action} has no explanation: {line!r}"
        assert PARSERS[f"login-etl {command} {action}"].description


def test_run_help_says_which_stack_it_uses() -> None:
    text = " ".join(PARSERS["login-etl run"].format_help().split())

    assert "AWS_ENDPOINT_URL" in text
    assert "DATABASE_URL" in text
    assert "'login-etl stack up' left running" in text
    assert "a throwaway stack" in text


def test_the_plugged_commands_are_listed_as_when_loaded() -> None:
    """``stack`` and ``run`` load only when named: the list of commands must not show it."""
    assert {"stack", "run"} <= set(plugged_commands())
    assert cli.parser().format_help() == cli.parser(load=plugged_commands()).format_help()
