"""Which stack a command acts on, checked and said before it acts.

The target is, in this order:

1. the stack the environment names: any of ``TARGET_VARIABLES`` set (LocalStack, AWS, your
   Postgres), AWS calls going where boto3's standard configuration sends them;
2. else the stack ``login-etl stack up`` left running (``.local-stack/stack.json``, in the
   working directory or above it: ``local_stack.stack_dir``);
3. else nothing, and that is an error: without it, a shell with AWS credentials in it sent
   ``keys`` and ``unmask`` to whatever account those credentials reach.

Two mistakes are recognised rather than reported as "cannot reach": variables that name only
part of a stack while ``stack up``'s runs (``DATABASE_URL`` alone sent the AWS calls to real
AWS), and exports pasted from a stack that has been stopped or replaced since.

Each command then says, on stderr, where it is going: the AWS endpoint (or, for AWS itself,
the account, region and identity) and the database's user, host, port and name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import boto3
import botocore.exceptions

from login_etl.config import ConfigurationError, parse_database_url
from login_etl_cli.local_stack import (
    LocalStack,
    patched_environ,
    postgres_url,
    read_state,
    running_stack,
    shown,
    state_file,
)
from login_etl_cli.ports import port_is_open

TARGET_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "DATABASE_URL",
    "QUEUE_URL",
    "DLQ_URL",
    "DATA_KEY_PARAMETER",
)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
UNSET_ALL = f"unset {' '.join(TARGET_VARIABLES)}"
FROM_ENVIRONMENT = "named by the environment"


class TargetError(Exception):
    """The target is missing, ambiguous or stale; the message says which and what to do."""


@dataclass(frozen=True)
class Target:
    """Where the commands' calls go, and why there."""

    origin: str
    local: LocalStack | None  # stack up's, when that is the target

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The environment as the command needs it (stack up's variables, if that is it)."""
        if self.local is None:
            yield
            return
        with patched_environ(self.local.environment()):
            yield


def named_variables() -> list[str]:
    """The target variables the environment sets."""
    return [name for name in TARGET_VARIABLES if os.environ.get(name)]


def choose_target() -> Target:
    """The environment's stack, else stack up's; ``TargetError`` if neither."""
    target = find_target()
    if target is not None:
        return target
    refuse_unusable_stack()
    raise TargetError(
        "no stack to use: start a local one with `login-etl stack up`, or name yours in the"
        " environment (AWS_ENDPOINT_URL for an emulator, DATABASE_URL, QUEUE_URL, DLQ_URL,"
        " DATA_KEY_PARAMETER for AWS itself; see docs/operating.md, 'Which stack a command uses')"
    )


def refuse_unusable_stack() -> None:
    """A stack ``stack up`` recorded whose servers do not all answer: refused, never skipped."""
    recorded = read_state()
    if recorded is not None:
        raise TargetError(
            f"the local stack is not usable: {recorded.describe()}. `login-etl stack down`,"
            " then `login-etl stack up`"
        )


def find_target() -> Target | None:
    """The environment's stack, else stack up's, else None."""
    named = named_variables()
    running = running_stack()
    if named:
        _refuse_stale_exports(running)
        if running is not None:
            _refuse_partial_exports(named, running)
        return Target(FROM_ENVIRONMENT, None)
    if running is not None:
        return Target(f"the local stack of 'login-etl stack up' ({shown(state_file())})", running)
    return None


def _refuse_partial_exports(named: list[str], running: LocalStack) -> None:
    """The environment names part of a stack while stack up's runs: say what that means."""
    local = running.environment()
    if "AWS_ENDPOINT_URL" not in named:
        raise TargetError(
            f"{', '.join(named)} set but AWS_ENDPOINT_URL not, while the local stack of"
            f" `login-etl stack up` runs at {running.aws_endpoint_url}: the environment wins,"
            " so the AWS calls would go to AWS itself, not to the local stack. Paste all the"
            f" exports `login-etl stack up` prints, or `{UNSET_ALL}` to use the local stack"
        )
    from_stack = [name for name in named if os.environ[name] == local[name]]
    missing = [name for name in TARGET_VARIABLES if name not in named]
    if from_stack and missing:
        raise TargetError(
            f"only some of the local stack's exports are set ({', '.join(from_stack)});"
            f" {', '.join(missing)} not: paste all the exports `login-etl stack up` prints, or"
            f" `{UNSET_ALL}` to use the local stack"
        )


def _refuse_stale_exports(running: LocalStack | None) -> None:
    """A loopback endpoint where nothing answers, in the shape `stack up` exports, is a
    stopped stack's export. One typed by hand (another user, database or host name) is not:
    the command's own "cannot reach" line says what is wrong with it.
    """
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    database = _loopback_port_of_database()
    dead = []
    if (
        endpoint
        and (port := _loopback_port(endpoint))
        and endpoint.rstrip("/") == f"http://127.0.0.1:{port}"
        and not port_is_open(port)
    ):
        dead.append(f"AWS_ENDPOINT_URL ({endpoint})")
    if (
        database
        and os.environ.get("DATABASE_URL") == postgres_url(database)
        and not port_is_open(database)
    ):
        dead.append(f"DATABASE_URL (127.0.0.1 port {database})")
    if not dead:
        return
    where = " and ".join(dead)
    if running is not None:
        raise TargetError(
            f"nothing answers at {where}: these exports are from an earlier `login-etl stack"
            f" up`; the local stack now runs at {running.aws_endpoint_url}. Paste the exports"
            f" `login-etl stack up` prints now, or `{UNSET_ALL}` to let the commands find it"
        )
    if read_state() is not None:
        raise TargetError(
            f"nothing answers at {where}, and the local stack is not fully up: exports of a"
            " stack that was stopped? `login-etl stack down`, `login-etl stack up`, and paste"
            f" its exports, or `{UNSET_ALL}`"
        )
    # No stack here to compare with: the command's own "cannot reach" error adds the hint.


def _loopback_port(url: str) -> int | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number: boto3 reports the URL itself
        return None
    return port if parts.hostname in LOOPBACK and port else None


def _loopback_port_of_database() -> int | None:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return None
    try:
        parts = parse_database_url(url)
    except ConfigurationError:
        return None  # the command reports that, without echoing the URL
    return parts.port if parts.host in LOOPBACK else None


def describe_aws() -> str:
    """Where boto3's calls go: the endpoint, or AWS's account, region and identity.

    For AWS itself this asks STS who we are (no permission needed): the account is the thing
    to check before acting. Missing region or credentials raise botocore's errors now.
    """
    session = boto3.session.Session()
    region = session.region_name
    if region is None:
        raise botocore.exceptions.NoRegionError
    if session.get_credentials() is None:
        raise botocore.exceptions.NoCredentialsError
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        return f"AWS at {endpoint} ({region})"
    identity = session.client("sts").get_caller_identity()
    return f"AWS account {identity['Account']} in {region} as {identity['Arn']}"


def describe_database() -> str:
    """The database DATABASE_URL names: user, host, port, database; never the password."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return "no database (DATABASE_URL unset)"
    parts = parse_database_url(url)  # a URL that does not parse is refused here, unechoed
    host = f"[{parts.host}]" if ":" in parts.host else parts.host
    return f"Postgres {parts.user}@{host}:{parts.port}/{parts.database}"
