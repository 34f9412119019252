"""``login-etl db init``: the admin creates the schema and the roles with their exact grants."""

from __future__ import annotations

import argparse
from typing import Any

import pg8000.native

from login_etl_cli.commands.arguments import actions, add_command
from login_etl_cli.commands.common import POSTGRES, UserError, database
from login_etl_cli.database_setup import GRANTS_FILE, SCHEMA_OBJECTS, init_database


def register(commands: Any) -> None:
    """Add ``db`` to the subcommands."""
    db = add_command(commands, "db", "set up the database (as its owner)")
    init = add_command(
        actions(db),
        "init",
        "create what is missing (tables, view, audit table), then the roles and grants",
        "Run it as the database's owner with CREATEROLE (on RDS: the master user). The\n"
        f"grants are those of src/login_etl_cli/{GRANTS_FILE}; rerunning changes nothing.",
    )
    init.set_defaults(command=db_command, needs=(POSTGRES,))


def db_command(args: argparse.Namespace) -> int:  # noqa: ARG001 - one action so far
    """Create the missing objects, apply the grants, say what was done."""
    with database() as conn:
        try:
            created = init_database(conn)
        except pg8000.native.DatabaseError as error:
            details = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
            if details.get("C") != "42501":
                raise
            raise UserError(
                f"{details.get('M')}: run `login-etl db init` as the database's owner with"
                " CREATEROLE (RDS: the master user), see src/login_etl_cli/grants.sql"
            ) from None
    existing = [name for name in SCHEMA_OBJECTS if name not in created]
    if created:
        print(f"created {', '.join(created)}")
    if existing:
        print(f"already there: {', '.join(existing)}")
    print(f"roles login_etl_function and login_etl_operator granted as in {GRANTS_FILE}")
    return 0
