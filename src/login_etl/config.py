"""All configuration, read from the environment in one place.

AWS endpoints, region and credentials are deliberately absent: boto3's standard configuration
(``AWS_ENDPOINT_URL``, ``AWS_REGION``, the credential chain) decides where calls go, so the same
code talks to AWS, LocalStack or moto.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import unquote

from login_etl.adapters.postgres.connection import ConnectionParams

SSL_MODES = ("disable", "require", "verify-full")
DB_AUTH_MODES = ("password", "iam")
MAX_SQS_WAIT_S = 20
MAX_LAMBDA_TIMEOUT_S = 900  # no invocation runs longer
MIN_SQS_RETENTION_S, MAX_SQS_RETENTION_S = 60, 1_209_600  # MessageRetentionPeriod's bounds
# Every data key ever made, one SSM parameter each (`login-etl keys`); the function reads none.
DEFAULT_KEYRING_PATH = "/login-etl/data-keys"
# Bound into every data key: a ciphertext made for something else will not decrypt here.
KMS_ENCRYPTION_CONTEXT = {"purpose": "login-etl/pii-masking"}


@dataclass(frozen=True, slots=True)
class NumberSetting:
    """A numeric setting's default and inclusive range, in its unit."""

    default: float
    low: float
    high: float
    unit: str
    whole: bool = True  # a whole number: 0.5 ms is no statement timeout anyone means

    def describe(self) -> str:
        """The range as docs/deploying.md and the error message say it."""
        kind = "a whole number" if self.whole else "a number"
        return f"{kind} from {_shown(self.low)} to {_shown(self.high)} ({self.unit})"


# Every numeric setting (docs/deploying.md's table lists the same ranges, a test checks it).
# The bounds are what the setting can mean: SQS's own limits for its values, Lambda's 900 s
# for the time of an invocation; past them, a value would pass the cold start and fail every
# batch (Postgres refuses a statement_timeout past 2^31 - 1 ms) or every prune.
NUMBERS: dict[str, NumberSetting] = {
    "DB_CONNECT_TIMEOUT_SECONDS": NumberSetting(5.0, 0.1, 60, "seconds", whole=False),
    "DB_STATEMENT_TIMEOUT_MS": NumberSetting(60_000, 0, MAX_LAMBDA_TIMEOUT_S * 1000, "ms; 0: none"),
    "DATA_KEY_MAX_AGE_SECONDS": NumberSetting(300, 0, 86_400, "seconds"),
    "MASK_CACHE_SIZE": NumberSetting(0, 0, 1_000_000, "entries"),
    "DRAIN_WAIT_SECONDS": NumberSetting(2, 0, MAX_SQS_WAIT_S, "seconds"),
    "DRAIN_RECEIVES_PER_BATCH": NumberSetting(10, 1, 100, "receives"),
    "DRAIN_SAFETY_MARGIN_MS": NumberSetting(10_000, 0, MAX_LAMBDA_TIMEOUT_S * 1000, "ms"),
    # The SQS maximum by default: a longer window than needed costs only disk.
    "QUEUE_RETENTION_SECONDS": NumberSetting(
        MAX_SQS_RETENTION_S, MIN_SQS_RETENTION_S, MAX_SQS_RETENTION_S, "seconds"
    ),
    "DLQ_RETENTION_SECONDS": NumberSetting(
        MAX_SQS_RETENTION_S, MIN_SQS_RETENTION_S, MAX_SQS_RETENTION_S, "seconds"
    ),
    "LEDGER_RETENTION_MARGIN_SECONDS": NumberSetting(86_400, 0, 30 * 86_400, "seconds"),
    "LEDGER_PRUNE_BATCH_ROWS": NumberSetting(5_000, 1, 1_000_000, "rows"),
}


class ConfigurationError(RuntimeError):
    """A setting is missing or malformed; the message says which and what to set."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the function reads from its environment."""

    database_url: str | None = field(repr=False)  # it holds the password
    database_secret_arn: str | None
    db_sslmode: str
    db_ssl_root_cert: str | None
    db_auth: str
    db_host: str | None
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
    queue_retention_s: int
    dlq_retention_s: int
    ledger_retention_margin_s: int
    ledger_prune_batch_rows: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and check the settings; raise ``ConfigurationError`` naming what is wrong."""
        env = os.environ if env is None else env
        settings = cls(
            database_url=env.get("DATABASE_URL") or None,
            database_secret_arn=env.get("DATABASE_SECRET_ARN") or None,
            db_sslmode=env.get("DB_SSLMODE", "disable"),
            db_ssl_root_cert=_root_cert(env),
            db_auth=env.get("DB_AUTH", "password"),
            db_host=env.get("DB_HOST") or None,
            db_connect_timeout_s=_number(env, "DB_CONNECT_TIMEOUT_SECONDS"),
            db_statement_timeout_ms=int(_number(env, "DB_STATEMENT_TIMEOUT_MS")),
            data_key_ciphertext=env.get("DATA_KEY_CIPHERTEXT") or None,
            data_key_parameter=env.get("DATA_KEY_PARAMETER") or None,
            data_key_max_age_s=int(_number(env, "DATA_KEY_MAX_AGE_SECONDS")),
            keyring_path=env.get("DATA_KEYRING_PATH", DEFAULT_KEYRING_PATH).rstrip("/"),
            queue_url=env.get("QUEUE_URL") or None,
            mask_cache_size=int(_number(env, "MASK_CACHE_SIZE")),
            drain_wait_s=int(_number(env, "DRAIN_WAIT_SECONDS")),
            drain_receives_per_batch=int(_number(env, "DRAIN_RECEIVES_PER_BATCH")),
            drain_safety_margin_ms=int(_number(env, "DRAIN_SAFETY_MARGIN_MS")),
            queue_retention_s=int(_number(env, "QUEUE_RETENTION_SECONDS")),
            dlq_retention_s=int(_number(env, "DLQ_RETENTION_SECONDS")),
            ledger_retention_margin_s=int(_number(env, "LEDGER_RETENTION_MARGIN_SECONDS")),
            ledger_prune_batch_rows=int(_number(env, "LEDGER_PRUNE_BATCH_ROWS")),
        )
        if not (settings.database_url or settings.database_secret_arn):
            raise ConfigurationError("set DATABASE_URL or DATABASE_SECRET_ARN")
        if not (settings.data_key_ciphertext or settings.data_key_parameter):
            raise ConfigurationError(
                "set DATA_KEY_CIPHERTEXT (base64 KMS ciphertext of the data key)"
                " or DATA_KEY_PARAMETER (the SSM parameter holding it)"
            )
        if settings.db_sslmode not in SSL_MODES:
            raise ConfigurationError(f"DB_SSLMODE must be one of {', '.join(SSL_MODES)}")
        if settings.db_auth not in DB_AUTH_MODES:
            raise ConfigurationError(f"DB_AUTH must be one of {', '.join(DB_AUTH_MODES)}")
        if settings.db_auth == "iam" and settings.db_sslmode != "verify-full":
            # The token is the password for 15 minutes: never sent to a server not verified.
            raise ConfigurationError("DB_AUTH=iam needs a verified server: DB_SSLMODE=verify-full")
        return settings


def connection_params_from_url(url: str, settings: Settings) -> ConnectionParams:
    """``postgresql://user:password@host:port/database`` -> connection parameters."""
    parts = parse_database_url(url)
    return ConnectionParams(
        host=settings.db_host or parts.host,
        port=parts.port,
        user=parts.user,
        password=parts.password,
        database=parts.database,
        sslmode=settings.db_sslmode,
        ssl_root_cert=settings.db_ssl_root_cert,
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )


class DatabaseUrl(NamedTuple):
    """The parts of a ``DATABASE_URL``, percent-decoded."""

    host: str
    port: int
    user: str
    password: str
    database: str


# What a DATABASE_URL parse can say, all of it. Fixed texts: nothing of the URL is ever put in
# an error (urlsplit's own errors quote the "port" a stray '/' cuts out of a password).
URL_SHAPE = "DATABASE_URL must look like postgresql://user:password@host:5432/database"
URL_RESERVED = (
    "DATABASE_URL has a '/', '?' or '#' in its user name or password (or an '@' after the"
    " host): percent-encode the user name and password ('/' is %2F, '?' %3F, '#' %23; in"
    " Python: urllib.parse.quote(password, safe=''))"
)
URL_ESCAPE = (
    "DATABASE_URL has a '%' that is not followed by two hex digits, or escapes that are not"
    " UTF-8: percent-encode the user name, password and database ('%' itself is %25)"
)
URL_HOST = (
    "DATABASE_URL has no usable host: a name, an IPv4 address or an IPv6 address in brackets"
    " ([::1]) after the '@'"
)
URL_PORT = "DATABASE_URL's port must be a number from 1 to 65535"
URL_ERRORS = (URL_SHAPE, URL_RESERVED, URL_ESCAPE, URL_HOST, URL_PORT)

_SCHEMES = ("postgresql://", "postgres://")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PORT = re.compile(r"[0-9]{1,5}")


def parse_database_url(url: str) -> DatabaseUrl:
    """Split a ``DATABASE_URL`` without ever echoing it: errors are ``URL_ERRORS`` texts.

    Written out rather than ``urllib.parse.urlsplit``, whose errors quote pieces of the URL and
    which, given an unencoded '/', '?' or '#' in a password, silently returns a wrong host and
    port made of the user name and the start of the password. Here the authority ends at the
    first '/', '?' or '#' as in RFC 3986, and the user information at its last '@' (so an
    unencoded '@', '[' or ']' in a password is still read right); an '@' after the authority
    means a password was cut in two, which is refused. Percent-escapes must be well formed.
    Every error is raised ``from None``: no chained exception can carry a piece of the URL.
    """
    scheme = next((prefix for prefix in _SCHEMES if url.startswith(prefix)), None)
    if scheme is None:
        raise ConfigurationError(URL_SHAPE) from None
    rest = url[len(scheme) :]
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if "@" in tail:
        raise ConfigurationError(URL_RESERVED) from None
    userinfo, _, hostport = authority.rpartition("@")
    user, _, password = userinfo.partition(":")
    host, port = _host_and_port(hostport)
    path = tail.split("?", 1)[0].split("#", 1)[0].lstrip("/")
    return DatabaseUrl(
        host=host,
        port=port,
        user=_decode(user) or "postgres",
        password=_decode(password),
        database=_decode(path) or "postgres",
    )


def _host_and_port(hostport: str) -> tuple[str, int]:
    if hostport.startswith("["):  # an IPv6 literal, optionally followed by :port
        host, bracket, port = hostport[1:].partition("]")
        if not bracket or not host or (port and not port.startswith(":")):
            raise ConfigurationError(URL_HOST) from None
        port = port[1:]
    else:
        host, _, port = hostport.partition(":")
        if not host or any(c in host for c in "[]:"):
            raise ConfigurationError(URL_HOST) from None
    if not port:
        return host.lower(), 5432
    if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise ConfigurationError(URL_PORT) from None
    return host.lower(), int(port)


def _decode(text: str) -> str:
    if _BAD_ESCAPE.search(text):
        raise ConfigurationError(URL_ESCAPE) from None
    # Not raised inside an ``except``: even ``from None`` keeps the caught UnicodeDecodeError
    # (which quotes the bytes) as ``__context__``, where error reporters look.
    decoded = unquote(text, errors="surrogateescape")  # bytes that are not UTF-8 -> U+DC80-DCFF
    if any("\udc80" <= char <= "\udcff" for char in decoded):
        raise ConfigurationError(URL_ESCAPE) from None
    return decoded


def connection_params_from_secret(
    secret: Mapping[str, object], settings: Settings
) -> ConnectionParams:
    """An RDS-style Secrets Manager secret (host, port, username, password, dbname)."""
    try:
        return ConnectionParams(
            host=settings.db_host or str(secret["host"]),
            port=int(str(secret.get("port", 5432))),
            user=str(secret["username"]),
            # IAM authentication needs no stored password: a token replaces it at connect.
            password=str(secret["password"] if settings.db_auth == "password" else ""),
            database=str(secret.get("dbname", "postgres")),
            sslmode=settings.db_sslmode,
            ssl_root_cert=settings.db_ssl_root_cert,
            connect_timeout_s=settings.db_connect_timeout_s,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )
    except (KeyError, ValueError) as error:
        raise ConfigurationError(
            "the database secret needs host, username and password (port, dbname optional)"
        ) from error


def _root_cert(env: Mapping[str, str]) -> str | None:
    """``DB_SSL_ROOT_CERT``: a CA bundle's path, relative to the function's code if not
    absolute; loaded now, so a missing or unreadable bundle fails the cold start, naming the
    setting, not every connect."""
    path = env.get("DB_SSL_ROOT_CERT")
    if not path:
        return None
    if env.get("DB_SSLMODE") != "verify-full":
        raise ConfigurationError("DB_SSL_ROOT_CERT is used only with DB_SSLMODE=verify-full")
    if not os.path.isabs(path):
        path = os.path.join(env.get("LAMBDA_TASK_ROOT") or os.getcwd(), path)
    import ssl  # noqa: PLC0415 - only deployments with a bundle pay for it

    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError):
        raise ConfigurationError(
            "DB_SSL_ROOT_CERT names no readable PEM bundle of certificates (e.g. the RDS CAs'"
            " placed in the artifact: docs/deploying.md)"
        ) from None
    return path


def _shown(bound: float) -> str:
    return f"{int(bound):,}" if float(bound).is_integer() else f"{bound:g}"


def _number(env: Mapping[str, str], name: str) -> float:
    """A numeric setting, checked against its range (``NUMBERS``); empty means the default."""
    setting = NUMBERS[name]
    raw = env.get(name)
    if not raw:
        return setting.default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    in_range = setting.low <= value <= setting.high  # False for nan
    if not in_range or (setting.whole and not value.is_integer()):
        raise ConfigurationError(f"{name} must be {setting.describe()}") from None
    return value
