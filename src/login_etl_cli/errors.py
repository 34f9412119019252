"""What went wrong, in one line of words: the CLI's explanation of an exception.

Each kind is said for what it is. An ``OSError`` used to be reported as "cannot reach
Postgres" whatever it was (a missing ``--file``, a directory); Postgres's errors reached the
user as pg8000's raw dict (``{'S': 'ERROR', 'C': '42P01', ...}``). Postgres's message is quoted
only for errors about objects and limits, never for data errors (class 22), whose messages can
quote a value.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import botocore.exceptions
import pg8000.exceptions

from login_etl.config import ConfigurationError
from login_etl_cli.audit import AuditError
from login_etl_cli.commands.common import UserError, redact
from login_etl_cli.targets import LOOPBACK, UNSET_ALL, TargetError

# SQLSTATE -> what it means for an operator, and what to do.
POSTGRES_ERRORS = {
    "28P01": "wrong user or password in DATABASE_URL",
    "28000": "this user may not connect (pg_hba.conf)",
    "3D000": "the database in DATABASE_URL does not exist",
    "42P01": "{message}: nothing has been loaded into this database yet (`login-etl run`), or"
    " its schema was never created (`login-etl db init`), or DATABASE_URL names another"
    " database",
    "42501": "{message} (this database user lacks a grant: see src/login_etl_cli/grants.sql)",
    "53300": "no connection slot left (max_connections is reached): close idle sessions"
    " (pg_stat_activity) or raise max_connections",
    "53100": "the server's disk is full",
    "57P01": "the server is shutting down",
    "57P03": "the server is starting up or shutting down: try again in a moment",
    "57014": "the statement took longer than DB_STATEMENT_TIMEOUT_MS and was cancelled",
    "40P01": "a deadlock with another session; run the command again",
}


def explain(error: BaseException) -> str:
    """One line: what is wrong and what to do; ``--debug`` shows the rest."""
    text = _explain(error)
    first, _, rest = text.strip().partition("\n")
    return f"{first} (more with --debug)" if rest.strip() else first


def _explain(error: BaseException) -> str:
    if isinstance(error, UserError | LookupError | AuditError | ConfigurationError | TargetError):
        return str(error).strip("'\"")
    return (
        _explain_aws(error)
        or _explain_postgres(error)
        or _explain_os(error)
        or f"{type(error).__name__}: {error} (rerun with --debug for the traceback)"
    )


def _explain_aws(error: BaseException) -> str | None:
    if isinstance(error, botocore.exceptions.NoRegionError):
        return "no AWS region: set AWS_DEFAULT_REGION (e.g. export AWS_DEFAULT_REGION=us-east-1)"
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
    if isinstance(error, botocore.exceptions.ProfileNotFound):
        return f"AWS profile {error.kwargs.get('profile')!r} not found: check AWS_PROFILE"
    if isinstance(error, botocore.exceptions.EndpointConnectionError):
        endpoint = str(error.kwargs.get("endpoint_url"))
        hint = ""
        if urlsplit(endpoint).hostname in LOOPBACK:
            hint = (
                " (exports of a stopped `login-etl stack up`? Start one and paste its exports,"
                f" or `{UNSET_ALL}`)"
            )
        return f"cannot reach AWS at {endpoint}: is the stack running?{hint}"
    if isinstance(error, botocore.exceptions.ClientError):
        return f"AWS refused: {error} (check the credentials' permissions and the resource names)"
    return None


def _explain_postgres(error: BaseException) -> str | None:
    url = os.environ.get("DATABASE_URL")
    database = redact(url) if url else "(DATABASE_URL unset)"
    if isinstance(error, pg8000.exceptions.InterfaceError):
        return f"cannot reach Postgres at {database}: is it running? (check DATABASE_URL)"
    if not isinstance(error, pg8000.exceptions.DatabaseError):
        return None
    details = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
    code, message = str(details.get("C", "")), str(details.get("M", ""))
    if code in POSTGRES_ERRORS:
        return f"Postgres at {database} refused: {POSTGRES_ERRORS[code].format(message=message)}"
    if code.startswith("22"):  # data exceptions: the message may quote a value
        return f"Postgres at {database} refused a value (SQLSTATE {code})"
    return f"Postgres at {database} refused: {message or 'no message'} (SQLSTATE {code or '?'})"


def _explain_os(error: BaseException) -> str | None:
    if not isinstance(error, OSError):
        return None
    what = error.strerror or str(error)
    return f"{what}: {error.filename}" if error.filename else what
