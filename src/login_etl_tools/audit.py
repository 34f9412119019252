"""The audit trail of PII recovery: who unmasked or re-keyed how many values, when, and why.

Written before any plaintext is shown (fail closed: no audit record, no output). Records hold
counts and the filter, never a value. With a database configured they go to the table
``login_etl_pii_audit``; without one (tokens given on the command line), to a JSON log line on
stderr.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pg8000.native
    from mypy_boto3_sts import STSClient

AUDIT_TABLE = "login_etl_pii_audit"
CREATE_AUDIT_TABLE = f"""
CREATE TABLE IF NOT EXISTS {AUDIT_TABLE}(
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  caller_arn text NOT NULL,
  action varchar(16) NOT NULL,
  source varchar(16) NOT NULL,
  filter jsonb,
  reason text,
  value_count integer NOT NULL)
"""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One recovery (or re-key) operation."""

    caller_arn: str
    action: str  # unmask | rekey
    source: str  # args | stdin | table
    value_count: int
    reason: str | None = None
    filter: dict[str, str] = field(default_factory=dict)


def caller_arn(sts: STSClient) -> str:
    """Who is calling: the STS identity of the credentials in use (needs no permission)."""
    return sts.get_caller_identity()["Arn"]


def write_audit(record: AuditRecord, conn: pg8000.native.Connection | None) -> None:
    """Record the operation in the audit table, or in the log when there is no database."""
    if conn is None:
        line = {"audit": "login-etl pii", "at": datetime.now(UTC).isoformat(), **asdict(record)}
        print(json.dumps(line), file=sys.stderr)
        return
    conn.run(CREATE_AUDIT_TABLE)
    conn.run(
        f"INSERT INTO {AUDIT_TABLE}"  # noqa: S608 - a constant table name, values are parameters
        " (caller_arn, action, source, filter, reason, value_count)"
        " VALUES (:caller, :action, :source, CAST(:filter AS jsonb), :reason, :count)",
        caller=record.caller_arn,
        action=record.action,
        source=record.source,
        filter=json.dumps(record.filter),
        reason=record.reason,
        count=record.value_count,
    )
