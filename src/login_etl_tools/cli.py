"""``login-etl``: run, inspect and operate the pipeline, locally or against AWS.

Every command talks to the stack the environment names (``AWS_ENDPOINT_URL``, ``DATABASE_URL``,
``QUEUE_URL``), else to the one ``login-etl stack up`` left running; ``run`` starts a throwaway
one if there is neither.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import pg8000.exceptions

from login_etl.config import ConfigurationError
from login_etl_tools.audit import AuditError
from login_etl_tools.commands import db, ledger, pii, queue, report, run, stack
from login_etl_tools.commands.common import UserError, redact, target_stack


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``login-etl`` console script."""
    args = parser().parse_args(argv)
    try:
        if args.command in (run.run_command, stack.stack_command):
            return int(args.command(args))
        with target_stack():
            return int(args.command(args))
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if args.debug:
            raise
        print(f"login-etl: {explain(error)}", file=sys.stderr)
        return 1


def parser() -> argparse.ArgumentParser:
    """Every subcommand, each registered by its module."""
    top = argparse.ArgumentParser(prog="login-etl", description=__doc__.split("\n\n")[0])
    top.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = top.add_subparsers(required=True, metavar="COMMAND")
    for module in (stack, run, queue, report, pii, db, ledger):
        module.register(commands)
    return top


POSTGRES_LOGIN_ERRORS = {
    "28P01": "wrong user or password in DATABASE_URL",
    "28000": "this user may not connect (pg_hba.conf)",
    "3D000": "the database in DATABASE_URL does not exist",
}


def explain(error: Exception) -> str:
    """One line: what is wrong and what to do."""
    if isinstance(error, UserError | LookupError | AuditError | ConfigurationError):
        return str(error).strip("'\"")
    return (
        _explain_aws(error)
        or _explain_postgres(error)
        or f"{type(error).__name__}: {error} (rerun with --debug for the traceback)"
    )


def _explain_aws(error: Exception) -> str | None:
    import botocore.exceptions  # noqa: PLC0415

    if isinstance(error, botocore.exceptions.NoRegionError):
        return "no AWS region: set AWS_DEFAULT_REGION (e.g. export AWS_DEFAULT_REGION=us-east-1)"
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
    if isinstance(error, botocore.exceptions.EndpointConnectionError):
        return f"cannot reach AWS at {error.kwargs.get('endpoint_url')}: is the stack running?"
    if isinstance(error, botocore.exceptions.ClientError):
        return f"AWS refused: {error} (check the credentials' permissions and the resource names)"
    return None


def _explain_postgres(error: Exception) -> str | None:
    url = os.environ.get("DATABASE_URL")
    database = redact(url) if url else "(DATABASE_URL unset)"
    if isinstance(error, pg8000.exceptions.InterfaceError | OSError):
        return f"cannot reach Postgres at {database}: is it running? (check DATABASE_URL)"
    if isinstance(error, pg8000.exceptions.DatabaseError):
        code = error.args[0].get("C") if error.args and isinstance(error.args[0], dict) else None
        if code in POSTGRES_LOGIN_ERRORS:
            return f"Postgres at {database} refused: {POSTGRES_LOGIN_ERRORS[code]}"
        if code == "42501":  # Postgres's message names the object, never a value
            return (
                f"Postgres at {database} refused: {error.args[0].get('M')} (this database user"
                " lacks a grant: see src/login_etl_tools/grants.sql)"
            )
    return None


if __name__ == "__main__":
    sys.exit(main())
