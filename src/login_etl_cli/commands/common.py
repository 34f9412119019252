"""What the commands share: the one-line user error, the target stack, the database."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import boto3
import pg8000.native

from login_etl.adapters.postgres.connection import connect
from login_etl.config import (
    DEFAULT_KEYRING_PATH,
    ConfigurationError,
    Settings,
    connection_params_from_url,
    parse_database_url,
)
from login_etl_cli.keys import DATA_KEY_PARAMETER, DEFAULT_KMS_KEY, KeyStore
from login_etl_cli.targets import choose_target, describe_aws, describe_database

AWS = "aws"
POSTGRES = "postgres"
QUEUE = "queue"
DLQ = "dlq"
TARGET_LINE = "login-etl: using "  # how the line naming the target starts


class UserError(Exception):
    """A problem the user can fix; printed as one line, no traceback."""


@contextmanager
def target_stack(needs: tuple[str, ...] = (), database_why: str = "") -> Iterator[None]:
    """The environment's stack, else stack up's (an error if neither), said on stderr first.

    ``needs``: what the command talks to (``AWS``, ``POSTGRES``, ``QUEUE``, ``DLQ``). What can
    be checked without acting is checked before the line is printed: the variables are set,
    the database URL parses, a region and credentials are there (and, for AWS itself, whose
    account it is). ``database_why``: said if DATABASE_URL is missing.
    """
    target = choose_target()
    with target.applied():
        if POSTGRES in needs:
            database_url(database_why)
        if QUEUE in needs or DLQ in needs:
            queue_urls(dlq=DLQ in needs)
        parts = []
        if POSTGRES in needs:
            parts.append(describe_database())
        if AWS in needs:
            parts.append(describe_aws())
        if parts:
            print(f"{TARGET_LINE}{' and '.join(parts)}: {target.origin}", file=sys.stderr)
        yield


def database_url(why: str = "") -> str:
    """DATABASE_URL, or a ``UserError`` saying how to set it."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise UserError(
            f"{why + ': ' if why else ''}set DATABASE_URL"
            " (postgresql://user:password@host:5432/database) or run `login-etl stack up`"
        )
    return url


def queue_urls(*, dlq: bool = False) -> tuple[str, str]:
    """(login queue, its DLQ) from QUEUE_URL / DLQ_URL; ``dlq``: the DLQ is needed too.

    Missing, both variables are named: an emulator's user (LocalStack) sets the two by hand.
    ``stack up`` is suggested only when no emulator is named: it starts moto, not theirs.
    """
    queue = os.environ.get("QUEUE_URL") or ""
    dead_letters = os.environ.get("DLQ_URL") or ""
    missing = [
        name for name, value in (("QUEUE_URL", queue), ("DLQ_URL", dead_letters)) if not value
    ]
    if not dlq:
        missing = [name for name in missing if name != "DLQ_URL"]
    if missing:
        emulator = os.environ.get("AWS_ENDPOINT_URL")
        where = f" on {emulator}" if emulator else ", or run `login-etl stack up` for a local stack"
        raise UserError(
            f"no queue: {' and '.join(missing)} not set. Set QUEUE_URL and DLQ_URL to the login"
            f" queue's URL and its dead-letter queue's{where}"
        )
    return queue, dead_letters


def key_store(kms_key: str = DEFAULT_KMS_KEY) -> KeyStore:
    """The data keys of DATA_KEY_PARAMETER / DATA_KEYRING_PATH (or their defaults)."""
    return KeyStore(
        boto3.client("ssm"),
        boto3.client("kms"),
        current_parameter=os.environ.get("DATA_KEY_PARAMETER") or DATA_KEY_PARAMETER,
        keyring_path=os.environ.get("DATA_KEYRING_PATH") or DEFAULT_KEYRING_PATH,
        kms_key=kms_key,
    )


def database(why: str = "") -> pg8000.native.Connection:
    """A connection to DATABASE_URL (use it in a ``with``: it closes on the way out).

    ``why``: said when DATABASE_URL is missing, for commands one would not expect to need it.
    """
    url = database_url(why)
    # Only the connection settings matter here; the data key's are not needed to connect.
    settings = Settings.from_env({**os.environ, "DATA_KEY_PARAMETER": DATA_KEY_PARAMETER})
    params = connection_params_from_url(url, settings)
    try:
        return connect(params)
    except OSError as error:  # socket and TLS errors that pg8000 does not wrap
        raise UserError(
            f"cannot reach Postgres at {redact(url)}: is it running? (check DATABASE_URL;"
            f" {error.strerror or type(error).__name__})"
        ) from None


def redact(url: str) -> str:
    """A database URL without its password, rebuilt from its parts; nothing if it does not parse.

    Rebuilt rather than cut out of the text: a password with an unencoded '/', '?' or '#' would
    otherwise leave its tail in what is shown.
    """
    try:
        parts = parse_database_url(url)
    except ConfigurationError:
        return "DATABASE_URL (not shown: it does not parse)"
    host = f"[{parts.host}]" if ":" in parts.host else parts.host
    user = quote(parts.user, safe="")
    credentials = f"{user}:***" if parts.password else user
    return f"postgresql://{credentials}@{host}:{parts.port}/{quote(parts.database, safe='')}"
