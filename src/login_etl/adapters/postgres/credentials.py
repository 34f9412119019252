"""Where connection parameters come from: fixed, a secret that rotates, or IAM tokens.

With ``DB_AUTH=iam`` nothing to rotate or leak is stored: each connect asks RDS's signer for a
token (a SigV4 presigned URL made locally by botocore, valid 15 minutes, no network call) and
pg8000 sends it as the password over TLS. The database user must be granted ``rds_iam``, and
the role needs ``rds-db:connect`` on that one user (the template's ``ConnectAsIamUser``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from login_etl.adapters.postgres.connection import ConnectionParams

if TYPE_CHECKING:
    from mypy_boto3_rds import RDSClient


class ConnectionParamsSource(Protocol):
    """Where connection parameters come from; re-read after an authentication failure."""

    def params(self, *, refresh: bool = False) -> ConnectionParams:
        """The parameters to use; ``refresh`` re-reads them (the secret may have rotated)."""
        ...


@dataclass(frozen=True, slots=True)
class FixedParams:
    """Parameters that never change (``DATABASE_URL``, tests)."""

    value: ConnectionParams

    def params(self, *, refresh: bool = False) -> ConnectionParams:  # noqa: ARG002
        """Always the same."""
        return self.value


class RereadParams:
    """Parameters read once (a Secrets Manager secret), and again when they stop working.

    RDS-managed secrets rotate on a schedule; the connection asks for a refresh after an
    authentication failure, so a warm container follows the rotation on its next connect.
    """

    def __init__(self, read: Callable[[], ConnectionParams]) -> None:
        self._read = read
        self._cached: ConnectionParams | None = None

    def params(self, *, refresh: bool = False) -> ConnectionParams:
        """The cached parameters; read now if there are none or on ``refresh``."""
        if self._cached is None or refresh:
            self._cached = self._read()
        return self._cached


class IamTokenParams:
    """Wraps a parameter source (host, port, user, database) and sets a fresh token on each."""

    def __init__(self, target: ConnectionParamsSource, rds: RDSClient) -> None:
        self._target = target
        self._rds = rds

    def params(self, *, refresh: bool = False) -> ConnectionParams:
        """The target with a token made now: tokens expire, so one is never reused."""
        target = self._target.params(refresh=refresh)
        token = self._rds.generate_db_auth_token(
            DBHostname=target.host, Port=target.port, DBUsername=target.user
        )
        return replace(target, password=token)
