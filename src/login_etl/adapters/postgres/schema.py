"""The tables this function writes (the given one, created if absent, never altered; its
ledger) and the statements that write them."""

from __future__ import annotations

import pg8000.native

from login_etl.adapters.postgres.transaction import Session, transaction
from login_etl.deadline import Deadline
from login_etl.domain.app_version import SQL_DECODE_EXPRESSION

TABLE = "user_logins"
LEDGER = "login_etl_processed_messages"
COLUMNS = (
    "user_id",
    "device_type",
    "masked_ip",
    "masked_device_id",
    "locale",
    "app_version",
    "create_date",
)

# Exactly the table the assignment gives. IF NOT EXISTS: an existing table is used as it is.
CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS user_logins(
  user_id varchar(128), device_type varchar(32), masked_ip varchar(256),
  masked_device_id varchar(256), locale varchar(32), app_version integer, create_date date)
"""

# The exactly-once ledger: a message id is recorded in the same transaction as its row, so a
# redelivered message (same SQS messageId) is recognised and never written twice.
CREATE_LEDGER = f"""
CREATE TABLE IF NOT EXISTS {LEDGER}(
  message_id varchar(128) PRIMARY KEY,
  processed_at timestamptz NOT NULL DEFAULT now())
"""

# The ids travel as one JSON array and only the ids already in the ledger (usually none) come
# back: pg8000 escapes a text[] parameter character by character in Python, and parses every
# returned row in Python too (docs/benchmarks.md, "The ledger insert").
# ORDER BY: concurrent batches that share ids (a redelivery racing a slow first delivery) take
# the ledger's row locks in one global order, so they wait for each other instead of
# deadlocking (40P01, a whole-batch retry each; docs/benchmarks.md, "The ledger insert"). Code
# point order (COLLATE "C"), the order of the ledger's COPY (ledger.py), whatever the
# database's collation.
INSERT_LEDGER = f"""
WITH batch AS (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb)) AS message_id),
     added AS (INSERT INTO {LEDGER} (message_id)
               SELECT message_id FROM batch ORDER BY message_id COLLATE "C"
               ON CONFLICT DO NOTHING RETURNING message_id)
SELECT message_id FROM batch EXCEPT ALL SELECT message_id FROM added
"""  # noqa: S608 - constant names only

# The ledger is kept for a retention window (ledger_pruning.ledger_window), then pruned a step
# at a time, each step its own short transaction over a fixed range of the heap's pages (a TID
# range scan, Postgres 14+): its cost is bounded whatever the ledger's size and history, and
# every step moves on, wherever old entries lie (after prunes, freed space at the heap's head
# takes new ones: a scan for old entries then reads the whole ledger; docs/benchmarks.md,
# "Pruning"). No index on processed_at: the writers would pay for it on every insert.

# Where the walk goes on: a run that ends short of the heap's last page (its time ran out) hands
# over to the next, so the whole ledger is walked whatever its size.
PRUNE_POSITION = "login_etl_prune_position"
CREATE_PRUNE_POSITION = f"""
CREATE TABLE IF NOT EXISTS {PRUNE_POSITION}(
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  next_page bigint NOT NULL)
"""
READ_PRUNE_POSITION = f"SELECT next_page FROM {PRUNE_POSITION}"  # noqa: S608 - constant names
SAVE_PRUNE_POSITION = f"""
INSERT INTO {PRUNE_POSITION} (id, next_page) VALUES (true, CAST(:page AS bigint))
ON CONFLICT (id) DO UPDATE SET next_page = EXCLUDED.next_page
"""  # noqa: S608 - constant names only
# The ledger's pages now, entries a page (-1: never analyzed), whether the position table is.
LEDGER_PAGES = f"""
SELECT pg_relation_size('{LEDGER}') / current_setting('block_size')::bigint,
       reltuples / GREATEST(relpages, 1), to_regclass('{PRUNE_POSITION}') IS NOT NULL
FROM pg_class WHERE oid = '{LEDGER}'::regclass
"""  # noqa: S608 - constant names only
PRUNE_LEDGER_PAGES = f"""
DELETE FROM {LEDGER}
WHERE ctid >= CAST(format('(%s,0)', CAST(:first AS bigint)) AS tid)
  AND ctid < CAST(format('(%s,0)', CAST(:after AS bigint)) AS tid)
  AND processed_at < now() - make_interval(secs => CAST(:retention_s AS double precision))
"""  # noqa: S608 - constant names only

# app_version decoded back to its dotted form, for analysts.
# Built from constants only (no input), hence the S608 waiver.
CREATE_DECODED_VIEW = f"""
CREATE OR REPLACE VIEW user_logins_decoded AS
SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version,
       {SQL_DECODE_EXPRESSION} AS app_version_text, create_date
FROM user_logins
"""  # noqa: S608

# Concurrent cold starts must not race on CREATE TABLE (catalog unique violations).
SCHEMA_LOCK_KEY = 0x6C6F67696E45544C  # "loginETL"

# (object, statement): a statement runs only if its object is missing, so a least-privilege
# database user (INSERT on user_logins, no SELECT, no DDL) works on a schema made by an admin.
SCHEMA_STATEMENTS = (
    (TABLE, CREATE_TABLE),
    (LEDGER, CREATE_LEDGER),
)
# For analysts only, so never on the write path's critical path: an existing table whose
# app_version is not an integer, or a user without CREATE, gets no view and still takes rows.
DECODED_VIEW = "user_logins_decoded"
# The prune's position too: without it, each run walks the ledger from its first page.
OPTIONAL_SCHEMA_STATEMENTS = (
    (DECODED_VIEW, CREATE_DECODED_VIEW),
    (PRUNE_POSITION, CREATE_PRUNE_POSITION),
)

# COPY's text format: a backslash, a tab, a newline or a carriage return in a value is escaped;
# nothing else is (``\N`` is NULL only as a whole unescaped field).
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(text: str) -> str:
    """``text`` as one field of a COPY text line."""
    return text.translate(_COPY_ESCAPES)


def ensure_schema(session: Session, deadline: Deadline | None = None) -> None:
    """Create what is missing, under an advisory lock so concurrent cold starts do not race.

    The optional objects (the analysts' view) are tried under a savepoint: one that cannot be
    made is left out, never a reason to stop writing.
    """
    with transaction(session, deadline):
        session.run("SELECT pg_advisory_xact_lock(:key)", key=SCHEMA_LOCK_KEY)
        for name, statement in SCHEMA_STATEMENTS:
            if not _exists(session, name):
                session.run(statement)
        for name, statement in OPTIONAL_SCHEMA_STATEMENTS:
            if not _exists(session, name):
                session.run("SAVEPOINT optional_object")
                try:
                    session.run(statement)
                except pg8000.native.DatabaseError:
                    session.run("ROLLBACK TO SAVEPOINT optional_object")
                session.run("RELEASE SAVEPOINT optional_object")
        session.end("COMMIT")


def table_exists(conn: pg8000.native.Connection, name: str) -> bool:
    """Whether the table (or view) is there, on the connection's search path."""
    return bool(conn.run("SELECT to_regclass(:name) IS NOT NULL", name=name)[0][0])


def _exists(session: Session, name: str) -> bool:
    return bool(session.run("SELECT to_regclass(:name) IS NOT NULL", name=name)[0][0])
