"""``login-etl stack`` and ``login-etl run``: commands the CLI finds through an entry point.

``pyproject.toml`` declares ``STACK`` and ``RUN`` in the entry-point group
``login_etl.commands``; ``login_etl_cli.commands.registry`` loads that group, so the CLI imports
nothing of this package. This module stays light (no boto3, no servers): ``login-etl --help``
loads it for the summaries, and a command's own module is imported only when it is named.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LocalCommand:
    """A subcommand of ``login-etl`` whose module is imported only when it is named."""

    summary: str  # what ``login-etl --help`` lists
    module: str  # its ``register(commands, summary)`` adds the real command

    def register(self, commands: Any) -> None:
        """Add the real command (its arguments, its function) to the subcommands."""
        importlib.import_module(self.module).register(commands, self.summary)


STACK = LocalCommand(
    "start, stop or inspect the local stack (moto server + throwaway PostgreSQL)",
    "login_etl_local.commands.stack",
)
RUN = LocalCommand(
    "load a queue of login messages into Postgres locally", "login_etl_local.commands.run"
)
