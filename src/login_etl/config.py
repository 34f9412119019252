"""All configuration, read from the environment in one place.

AWS endpoints, region and credentials are deliberately absent: boto3's standard configuration
(``AWS_ENDPOINT_URL``, ``AWS_REGION``, the credential chain) decides where calls go, so the same
code talks to AWS, LocalStack or moto.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from login_etl.adapters.postgres_connection import ConnectionParams

SSL_MODES = ("disable", "require", "verify-full")
MAX_SQS_WAIT_S = 20
# Every data key ever made, one SSM parameter each (`login-etl keys`); the function reads none.
DEFAULT_KEYRING_PATH = "/login-etl/data-keys"
# Bound into every data key: a ciphertext made for something else will not decrypt here.
KMS_ENCRYPTION_CONTEXT = {"purpose": "login-etl/pii-masking"}


class ConfigurationError(RuntimeError):
    """A setting is missing or malformed; the message says which and what to set."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the function reads from its environment."""

    database_url: str | None
    database_secret_arn: str | None
    db_sslmode: str
    db_connect_timeout_s: float
    db_statement_timeout_ms: int
    data_key_ciphertext: str | None
    data_key_parameter: str | None
    data_key_max_age_s: int
    keyring_path: str
    queue_url: str | None
    mask_cache_size: int
    drain_wait_s: int
    drain_receives_per_batch: int
    drain_safety_margin_ms: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and check the settings; raise ``ConfigurationError`` naming what is wrong."""
        env = os.environ if env is None else env
        settings = cls(
            database_url=env.get("DATABASE_URL") or None,
            database_secret_arn=env.get("DATABASE_SECRET_ARN") or None,
            db_sslmode=env.get("DB_SSLMODE", "disable"),
            db_connect_timeout_s=_number(env, "DB_CONNECT_TIMEOUT_SECONDS", 5.0),
            db_statement_timeout_ms=int(_number(env, "DB_STATEMENT_TIMEOUT_MS", 60_000)),
            data_key_ciphertext=env.get("DATA_KEY_CIPHERTEXT") or None,
            data_key_parameter=env.get("DATA_KEY_PARAMETER") or None,
            data_key_max_age_s=int(_number(env, "DATA_KEY_MAX_AGE_SECONDS", 300)),
            keyring_path=env.get("DATA_KEYRING_PATH", DEFAULT_KEYRING_PATH).rstrip("/"),
            queue_url=env.get("QUEUE_URL") or None,
            mask_cache_size=int(_number(env, "MASK_CACHE_SIZE", 20_000)),
            drain_wait_s=int(_number(env, "DRAIN_WAIT_SECONDS", 2)),
            drain_receives_per_batch=int(_number(env, "DRAIN_RECEIVES_PER_BATCH", 10)),
            drain_safety_margin_ms=int(_number(env, "DRAIN_SAFETY_MARGIN_MS", 10_000)),
        )
        if not (settings.database_url or settings.database_secret_arn):
            raise ConfigurationError("set DATABASE_URL or DATABASE_SECRET_ARN")
        if not (settings.data_key_ciphertext or settings.data_key_parameter):
            raise ConfigurationError(
                "set DATA_KEY_CIPHERTEXT (base64 KMS ciphertext of the data key)"
                " or DATA_KEY_PARAMETER (the SSM parameter holding it)"
            )
        if not 0 <= settings.drain_wait_s <= MAX_SQS_WAIT_S:
            raise ConfigurationError(f"DRAIN_WAIT_SECONDS must be 0-{MAX_SQS_WAIT_S}")
        if settings.drain_receives_per_batch < 1:
            raise ConfigurationError("DRAIN_RECEIVES_PER_BATCH must be at least 1")
        if settings.db_sslmode not in SSL_MODES:
            raise ConfigurationError(f"DB_SSLMODE must be one of {', '.join(SSL_MODES)}")
        return settings


def connection_params_from_url(url: str, settings: Settings) -> ConnectionParams:
    """``postgresql://user:password@host:port/database`` -> connection parameters."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise ConfigurationError(
            "DATABASE_URL must look like postgresql://user:password@host:5432/database"
        )
    return ConnectionParams(
        host=parts.hostname,
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")) or "postgres",
        sslmode=settings.db_sslmode,
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )


def connection_params_from_secret(
    secret: Mapping[str, object], settings: Settings
) -> ConnectionParams:
    """An RDS-style Secrets Manager secret (host, port, username, password, dbname)."""
    try:
        return ConnectionParams(
            host=str(secret["host"]),
            port=int(str(secret.get("port", 5432))),
            user=str(secret["username"]),
            password=str(secret["password"]),
            database=str(secret.get("dbname", "postgres")),
            sslmode=settings.db_sslmode,
            connect_timeout_s=settings.db_connect_timeout_s,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )
    except (KeyError, ValueError) as error:
        raise ConfigurationError(
            "the database secret needs host, username and password (port, dbname optional)"
        ) from error


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number") from None
