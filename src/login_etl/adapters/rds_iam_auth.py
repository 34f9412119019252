"""IAM database authentication: a short-lived token from the function's role, not a password.

With ``DB_AUTH=iam`` nothing to rotate or leak is stored: each connect asks RDS's signer for a
token (a SigV4 presigned URL made locally by botocore, valid 15 minutes, no network call) and
pg8000 sends it as the password over TLS. The database user must be granted ``rds_iam``, and
the role needs ``rds-db:connect`` on that one user (the template's ``ConnectAsIamUser``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from login_etl.adapters.postgres_connection import ConnectionParams, ConnectionParamsSource

if TYPE_CHECKING:
    from mypy_boto3_rds import RDSClient


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
