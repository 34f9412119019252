"""Every subcommand of ``login-etl``: the CLI's own, and those other packages plug in.

``stack`` and ``run`` start and stop the local stack, so they live with it, in
``login_etl_local``; the operator CLI imports nothing of that package (``tests/test_layout.py``).
They reach the CLI through the entry-point group ``login_etl.commands`` (``pyproject.toml``):
each entry is an object with a ``summary`` and a ``register(commands)``. Loading the entry
costs only its light module; ``register``, which imports the command's own module, runs only
when the command line names it, and the summary stands in for ``login-etl --help`` otherwise.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from importlib.metadata import entry_points
from typing import Any, Protocol

from login_etl_cli.commands import db, ledger, pii, queue, report
from login_etl_cli.commands.arguments import add_command

GROUP = "login_etl.commands"


class PluggedCommand(Protocol):
    """What an entry of ``login_etl.commands`` loads to."""

    @property
    def summary(self) -> str: ...

    def register(self, commands: Any) -> None: ...


def plugged_commands() -> dict[str, PluggedCommand]:
    """The commands other packages declare, by name, in the order they declare them."""
    return {entry.name: entry.load() for entry in entry_points(group=GROUP)}


def register_all(commands: Any, load: Collection[str] = ()) -> None:
    """Add every subcommand: a plugged one for real if in ``load``, else its summary only."""
    for name, plugged in plugged_commands().items():
        if name in load:
            plugged.register(commands)
        else:
            add_command(commands, name, plugged.summary)
    for module in (queue, report, pii, db, ledger):
        module.register(commands)


def named_command(argv: Sequence[str]) -> str | None:
    """The subcommand a command line names: its first word that is not an option."""
    return next((word for word in argv if not word.startswith("-")), None)
