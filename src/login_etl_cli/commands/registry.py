"""Every subcommand of ``login-etl``; ``stack`` and ``run`` imported only when they are named.

``stack`` and ``run`` start and stop the local stack, so they live with it, in
``login_etl_local.commands``. The operator CLI must not depend on the local stack (the rule
``tests/test_layout.py`` checks), so this module imports them, inside ``_local_register``,
only when the command line names one of them; otherwise a stub with the same one-line summary
stands in for ``login-etl --help``. (The summaries are kept here and the commands use them,
so the stub and the real command cannot drift apart.) These are the only imports of
``login_etl_local`` in the CLI apart from ``stack_record``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from login_etl_cli.commands import db, ledger, pii, queue, report
from login_etl_cli.commands.arguments import add_command

# name -> the summary ``login-etl --help`` lists, in the order it lists them (before the rest).
LOCAL_COMMANDS = {
    "stack": "start, stop or inspect the local stack (moto server + throwaway PostgreSQL)",
    "run": "load a queue of login messages into Postgres locally",
}


def register_all(commands: Any, load: Collection[str] = ()) -> None:
    """Add every subcommand: ``stack`` and ``run`` for real if in ``load``, else their stubs."""
    for name, summary in LOCAL_COMMANDS.items():
        if name in load:
            _local_register(name)(commands)
        else:
            add_command(commands, name, summary)
    for module in (queue, report, pii, db, ledger):
        module.register(commands)


def named_command(argv: Sequence[str]) -> str | None:
    """The subcommand a command line names: its first word that is not an option."""
    return next((word for word in argv if not word.startswith("-")), None)


def _local_register(name: str) -> Callable[[Any], None]:
    if name == "stack":
        from login_etl_local.commands import stack  # noqa: PLC0415 - lazily: see the docstring

        return stack.register
    from login_etl_local.commands import run  # noqa: PLC0415 - lazily: see the docstring

    return run.register
