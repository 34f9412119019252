-- login-etl: the database roles and their exact grants.
--
-- `login-etl db init` runs this file, as the admin, once the schema exists (it creates the
-- schema first); it is plain SQL, so `psql -v ON_ERROR_STOP=1 -1 -f` does the same. Re-running
-- it changes nothing. tests/function/integration/test_least_privilege.py runs it in a fresh database and
-- checks every command as every role, and that lesser roles are refused.
--
-- The admin (not created here): the database's owner, with CREATEROLE. It creates the schema
-- (user_logins, login_etl_processed_messages, user_logins_decoded, login_etl_prune_position,
-- login_etl_pii_audit: it owns
-- them), these roles, runs `login-etl rekey`, and reads the audit table. On RDS the master user
-- is one; elsewhere a superuser makes it:
--   CREATE ROLE login_etl_admin LOGIN CREATEROLE PASSWORD '...';
--   CREATE DATABASE logins OWNER login_etl_admin;
--
-- The two roles below cannot log in: give them to the login users, e.g.
--   CREATE ROLE lambda LOGIN PASSWORD '...' IN ROLE login_etl_function;  -- the function's secret
--   CREATE ROLE alice LOGIN PASSWORD '...' IN ROLE login_etl_operator;   -- one per operator

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'login_etl_function') THEN
    CREATE ROLE login_etl_function NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'login_etl_operator') THEN
    CREATE ROLE login_etl_operator NOLOGIN;
  END IF;
END
$$;

-- PUBLIC has USAGE on schema public by default; said here in case it was revoked. Neither role
-- gets CREATE: they never run DDL (the function and the tools create only what is missing).
GRANT USAGE ON SCHEMA public TO login_etl_function, login_etl_operator;

-- The function loads rows and never reads them back: stolen function credentials (its IAM role
-- holds kms:Decrypt) do not give the table's PII in bulk. SELECT on the ledger is for its
-- INSERT ... ON CONFLICT DO NOTHING RETURNING (which message ids were new).
-- DELETE on the ledger is for its retention (the scheduled `prune-ledger` run deletes entries
-- older than the window in which a message can come back); it never touches user_logins.
GRANT INSERT ON user_logins TO login_etl_function;
GRANT SELECT, INSERT, DELETE ON login_etl_processed_messages TO login_etl_function;
-- The prune's position in the ledger, which a run that runs out of time hands to the next.
GRANT SELECT, INSERT, UPDATE ON login_etl_prune_position TO login_etl_function;

-- Operators: `login-etl report` and `unmask --where` read the masked table; every `unmask`
-- (tokens given directly too) inserts its audit record first. INSERT only: they can neither
-- read nor change the audit trail (the id is an identity column: no sequence grant needed).
GRANT SELECT ON user_logins, user_logins_decoded TO login_etl_operator;
GRANT INSERT ON login_etl_pii_audit TO login_etl_operator;

-- Only for an audit table made by an earlier login-etl, whose id was a bigserial.
DO $$
BEGIN
  IF to_regclass('login_etl_pii_audit_id_seq') IS NOT NULL THEN
    GRANT USAGE ON SEQUENCE login_etl_pii_audit_id_seq TO login_etl_operator;
  END IF;
END
$$;
