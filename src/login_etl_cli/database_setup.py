"""The admin's one step: create what is missing in the database, then apply ``grants.sql``.

The function's objects (``user_logins``, the ledger, the view) are created by the function's
own ``ensure_schema``, the same DDL and advisory lock its cold starts use; the audit table by
``audit.ensure_audit_table``. Both create only what is missing, so this is safe to rerun.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

from login_etl.adapters.postgres.schema import (
    LEDGER,
    PRUNE_POSITION,
    TABLE,
    ensure_schema,
    table_exists,
)
from login_etl.adapters.postgres.transaction import Session
from login_etl_cli.audit import AUDIT_TABLE, ensure_audit_table

if TYPE_CHECKING:
    import pg8000.native

GRANTS_FILE = "grants.sql"
SCHEMA_OBJECTS = (TABLE, LEDGER, "user_logins_decoded", PRUNE_POSITION, AUDIT_TABLE)


def grants_sql() -> str:
    """The roles and grants, exactly as shipped (and as docs/security.md points to)."""
    return files("login_etl_cli").joinpath(GRANTS_FILE).read_text(encoding="utf-8")


def init_database(conn: pg8000.native.Connection) -> list[str]:
    """Create the missing schema objects, then the roles and grants; the objects created."""
    missing = [name for name in SCHEMA_OBJECTS if not table_exists(conn, name)]
    ensure_schema(Session(conn))
    ensure_audit_table(conn)
    apply_grants(conn)
    return missing


def apply_grants(conn: pg8000.native.Connection) -> None:
    """Run ``grants.sql``: all of it or nothing."""
    # No parameters, so pg8000 sends it as one simple query, which Postgres runs as one
    # implicit transaction.
    conn.run(grants_sql())
