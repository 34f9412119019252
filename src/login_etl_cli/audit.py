"""The audit trail of PII recovery: who unmasked or re-keyed how many values, when, and why.

Every record goes to the table ``login_etl_pii_audit`` and is committed before any value is
decrypted. There is no other place: with no database, no table, or no INSERT grant, nothing
is unmasked (fail closed). A log line on stderr would not do: ``2>/dev/null`` discards it.
Records hold counts, key ids, the filter and the reason; never a value, never a token.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pg8000.native

from login_etl.domain.masking import token_key_id

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

AUDIT_TABLE = "login_etl_pii_audit"
# An identity column, not bigserial: INSERT on the table is then all an operator needs (a
# serial's sequence would need its own USAGE grant).
CREATE_AUDIT_TABLE = f"""
CREATE TABLE {AUDIT_TABLE}(
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  caller_arn text NOT NULL,
  action varchar(16) NOT NULL,
  source varchar(16) NOT NULL,
  filter jsonb,
  reason text,
  value_count integer NOT NULL,
  key_ids text[] NOT NULL DEFAULT '{{}}')
"""
# A table made by an earlier login-etl lacks the column (its owner adds it: `login-etl db init`).
ADD_KEY_IDS = f"ALTER TABLE {AUDIT_TABLE} ADD COLUMN key_ids text[] NOT NULL DEFAULT '{{}}'"
_STATE = """
SELECT to_regclass(:name) IS NOT NULL,
       EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass(:name)
               AND attname = 'key_ids' AND NOT attisdropped)
"""
_LOCK_KEY = 0x6C6F67696E415544  # "loginAUD": two first calls must not race on CREATE TABLE
_INSERT = (
    f"INSERT INTO {AUDIT_TABLE}"  # noqa: S608 - a constant table name, values are parameters
    " (caller_arn, action, source, filter, reason, value_count, key_ids)"
    " VALUES (:caller, :action, :source, CAST(:filter AS jsonb), :reason, :count,"
    " ARRAY(SELECT jsonb_array_elements_text(CAST(:key_ids AS jsonb))))"
)


class AuditError(Exception):
    """The audit record could not be written, so nothing was unmasked; one worded line."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One recovery (or re-key) operation."""

    caller_arn: str
    action: str  # unmask | rekey
    source: str  # args | stdin | table
    value_count: int
    reason: str | None = None
    filter: dict[str, str] | None = None  # the --where filters; None for tokens given directly
    key_ids: tuple[int, ...] = ()  # the data keys the values are asked of


def caller_arn(sts: STSClient) -> str:
    """Who is calling: the STS identity of the credentials in use (needs no permission)."""
    return sts.get_caller_identity()["Arn"]


def key_ids_of(tokens: Iterable[str | None]) -> tuple[int, ...]:
    """The key ids the tokens name, distinct and sorted; read from the token, no key needed.

    A token that does not parse names no key (its own ``error`` says so in the output).
    """
    ids = set()
    for token in tokens:
        if token is None:
            continue
        with contextlib.suppress(ValueError):  # binascii.Error is a ValueError
            ids.add(token_key_id(token))
    return tuple(sorted(ids))


def ensure_audit_table(conn: pg8000.native.Connection) -> None:
    """Create the table (or its ``key_ids`` column) only if missing, or say why it cannot be.

    Checked first, with ``to_regclass``: an operator's database user has no CREATE on the
    schema, and ``CREATE TABLE IF NOT EXISTS`` needs it even when the table exists.
    """
    missing = _missing(conn)
    if not missing:
        return
    conn.run("START TRANSACTION")
    try:
        conn.run("SELECT pg_advisory_xact_lock(:key)", key=_LOCK_KEY)
        missing = _missing(conn)  # again: another session may have made it meanwhile
        for statement in missing:
            conn.run(statement)
        conn.run("COMMIT")
    except pg8000.native.DatabaseError as error:
        _rollback(conn)
        if _sqlstate(error) == "42501":
            what = "is missing" if CREATE_AUDIT_TABLE in missing else "has no key_ids column"
            raise AuditError(
                f"the audit table {AUDIT_TABLE} {what} and this database user cannot change"
                f" that ({_message(error)}): nothing was unmasked. The admin runs"
                " `login-etl db init`"
            ) from None
        raise
    except BaseException:
        _rollback(conn)
        raise


def _missing(conn: pg8000.native.Connection) -> list[str]:
    exists, complete = conn.run(_STATE, name=AUDIT_TABLE)[0]
    if not exists:
        return [CREATE_AUDIT_TABLE]
    return [] if complete else [ADD_KEY_IDS]


def write_audit(record: AuditRecord, conn: pg8000.native.Connection) -> None:
    """Insert the record and commit it; raise ``AuditError`` if that cannot be done."""
    ensure_audit_table(conn)
    conn.run("START TRANSACTION")
    try:
        conn.run(
            _INSERT,
            caller=record.caller_arn,
            action=record.action,
            source=record.source,
            filter=None if record.filter is None else json.dumps(record.filter),
            reason=record.reason,
            count=record.value_count,
            key_ids=json.dumps([f"{key_id:08x}" for key_id in record.key_ids]),
        )
        conn.run("COMMIT")  # durable before the caller decrypts anything
    except pg8000.native.DatabaseError as error:
        _rollback(conn)
        if _sqlstate(error) == "42501":  # insufficient_privilege
            raise AuditError(
                f"cannot write the audit record ({_message(error)}): nothing was unmasked."
                f" This database user needs the operator's grants (INSERT on {AUDIT_TABLE}:"
                " src/login_etl_cli/grants.sql)"
            ) from None
        raise
    except BaseException:
        _rollback(conn)
        raise


def _rollback(conn: pg8000.native.Connection) -> None:
    # The connection may be gone already; the original error is the one to report.
    with contextlib.suppress(pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError):
        conn.run("ROLLBACK")


def _sqlstate(error: pg8000.native.DatabaseError) -> str:
    details = error.args[0] if error.args else None
    return str(details.get("C", "")) if isinstance(details, dict) else ""


def _message(error: pg8000.native.DatabaseError) -> str:
    """Postgres's own message (names objects, never values)."""
    details = error.args[0] if error.args else None
    return str(details.get("M", "")) if isinstance(details, dict) else ""
