"""The DDL this function needs: the given table (created if absent, never altered), its ledger."""

from __future__ import annotations

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
    ("user_logins_decoded", CREATE_DECODED_VIEW),
)
