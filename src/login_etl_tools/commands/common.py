"""What the commands share: the one-line user error, the target stack, the database."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import boto3
import pg8000.native

from login_etl.adapters.postgres_connection import connect
from login_etl.config import (
    DEFAULT_KEYRING_PATH,
    ConfigurationError,
    Settings,
    connection_params_from_url,
    parse_database_url,
)
from login_etl_tools.keys import DEFAULT_KMS_KEY, KeyStore
from login_etl_tools.provisioning import DATA_KEY_PARAMETER
from login_etl_tools.stack import patched_environ
from login_etl_tools.stack_state import read_state


class UserError(Exception):
    """A problem the user can fix; printed as one line, no traceback."""


def uses_environment() -> bool:
    """The environment names a stack (LocalStack, AWS, your Postgres): use it as it is."""
    return bool(os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("DATABASE_URL"))


@contextmanager
def target_stack() -> Iterator[None]:
    """The environment's stack if it names one, else the one ``stack up`` left running.

    With neither, the environment is used as it is (real AWS through the credential chain).
    """
    state = None if uses_environment() else read_state()
    if state is None or not all(state.is_up()):
        yield
        return
    with patched_environ(state.stack().environment()):
        yield


def queue_urls() -> tuple[str, str]:
    """(login queue, its DLQ), from QUEUE_URL / DLQ_URL or the running local stack."""
    queue = os.environ.get("QUEUE_URL")
    if not queue:
        raise UserError(
            "no queue: run `login-etl stack up` (or set QUEUE_URL, and DLQ_URL for dlq commands)"
        )
    dlq = os.environ.get("DLQ_URL") or ""
    return queue, dlq


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
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise UserError(
            f"{why + ': ' if why else ''}set DATABASE_URL"
            " (postgresql://user:password@host:5432/database) or run `login-etl stack up`"
        )
    # Only the connection settings matter here; the data key's are not needed to connect.
    settings = Settings.from_env({**os.environ, "DATA_KEY_PARAMETER": DATA_KEY_PARAMETER})
    return connect(connection_params_from_url(url, settings))


def show_progress(done: int, total: int, what: str) -> None:
    """A progress bar on stderr, redrawn in place; nothing unless stderr is a terminal."""
    if sys.stderr.isatty() and total:
        done = min(done, total)
        bar = "#" * (30 * done // total)
        print(f"\r  [{bar:<30}] {done}/{total} {what}", end="", file=sys.stderr, flush=True)


def end_progress() -> None:
    """Leave the progress line before printing results."""
    if sys.stderr.isatty():
        print(file=sys.stderr)


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
