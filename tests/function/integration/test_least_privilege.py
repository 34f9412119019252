"""Each database role works with exactly the grants of ``src/login_etl_cli/grants.sql``.

In a fresh database owned by the admin (made by the stack's superuser, as the file's header
says), the admin runs ``login-etl db init`` (the schema, then the file), and login users join
the two roles. Then every entry point runs as every role: the handler as the function's user,
``report``, ``unmask`` and ``rekey`` as subprocesses, as an operator and as the admin; and lesser
roles are refused. The function's user cannot read ``user_logins`` back: stolen function
credentials (its IAM role holds kms:Decrypt) do not give the table's PII in bulk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pg8000.native
import pytest

from login_etl.adapters.postgres.connection import connect
from login_etl.config import Settings, connection_params_from_url
from login_etl.handler import lambda_handler
from login_etl.runtime import reset_runtime
from login_etl_cli.keys import KeyStore
from login_etl_cli.seeding import send_bodies
from login_etl_local.event_source_mapping import LocalContext
from login_etl_local.provisioning import Provisioned
from login_etl_local.stack_record import LocalStack, patched_environ
from tests.cli_helpers import without_target_line
from tests.sqs_helpers import receive_event

DATABASE = "login_etl_roles"
# The prerequisites grants.sql's header gives, with this test's passwords and database name.
AS_SUPERUSER = (
    "CREATE ROLE login_etl_admin LOGIN CREATEROLE PASSWORD 'admin-password'",
    f"CREATE DATABASE {DATABASE} OWNER login_etl_admin",
)
AS_ADMIN = (
    "CREATE ROLE lambda_user LOGIN PASSWORD 'lambda-password' IN ROLE login_etl_function",
    "CREATE ROLE alice LOGIN PASSWORD 'alice-password' IN ROLE login_etl_operator",
)
ROLES = ("lambda_user", "alice", "login_etl_function", "login_etl_operator", "login_etl_admin")
IP, DEVICE = "10.9.8.7", "111-22-3333"


@dataclass(frozen=True)
class Users:
    """DATABASE_URL of each role's login user."""

    admin: str
    function: str
    operator: str


@pytest.fixture
def users(stack: LocalStack, tmp_path: Path) -> Iterator[Users]:
    superuser = database(stack.database_url)
    drop_everything(superuser)
    for statement in AS_SUPERUSER:
        superuser.run(statement)
    parts = urlsplit(stack.database_url)

    def url(user: str, password: str) -> str:
        return f"postgresql://{user}:{password}@{parts.netloc.split('@')[1]}/{DATABASE}"

    found = Users(
        url("login_etl_admin", "admin-password"),
        url("lambda_user", "lambda-password"),
        url("alice", "alice-password"),
    )
    initialised = login_etl(found.admin, "db", "init", cwd=tmp_path)
    assert initialised.returncode == 0, initialised.stderr
    with database(found.admin) as admin:
        for statement in AS_ADMIN:
            admin.run(statement)
    reset_runtime()
    yield found
    reset_runtime()
    drop_everything(superuser)
    superuser.close()


@pytest.fixture
def keys(queue: Provisioned) -> Iterator[KeyStore]:
    """A keyring of this test's own; the handler and the commands use it."""
    prefix = f"/login-etl-roles-{uuid.uuid4().hex[:8]}"
    env = {"DATA_KEY_PARAMETER": f"{prefix}/data-key", "DATA_KEYRING_PATH": f"{prefix}/data-keys"}
    store = KeyStore(
        boto3.client("ssm"),
        boto3.client("kms"),
        current_parameter=env["DATA_KEY_PARAMETER"],
        keyring_path=env["DATA_KEYRING_PATH"],
        kms_key=queue.kms_key_id,
    )
    with patched_environ({**env, "DATA_KEY_MAX_AGE_SECONDS": "0"}):
        store.init()
        yield store


def drop_everything(superuser: pg8000.native.Connection) -> None:
    superuser.run(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    for role in ROLES:
        superuser.run(f"DROP ROLE IF EXISTS {role}")


def database(url: str) -> pg8000.native.Connection:
    return connect(connection_params_from_url(url, Settings.from_env()))


def login_etl(url: str, *args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``login-etl ARGS`` in its own process, as the database user of ``url``.

    stderr without the line naming the target: these tests are about what follows it.
    """
    result = subprocess.run(
        [sys.executable, "-m", "login_etl_cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": url},
        cwd=cwd,
        timeout=300,
        check=False,
    )
    result.stderr = without_target_line(result.stderr)
    return result


def load(queue: Provisioned, users: Users, count: int) -> dict[str, Any]:
    """``count`` logins through the handler, as the function's database user."""
    bodies = [
        json.dumps(
            {
                "user_id": f"u{i}",
                "app_version": "1.0",
                "device_type": "ios",
                "ip": IP,
                "locale": None,
                "device_id": DEVICE,
            }
        )
        for i in range(count)
    ]
    send_bodies(boto3.client("sqs"), queue.queue_url, bodies)
    with patched_environ({"DATABASE_URL": users.function}):
        response: dict[str, Any] = lambda_handler(receive_event(queue, count), LocalContext())
    return response


def refused(url: str, statement: str) -> str:
    """The SQLSTATE of ``statement`` run as the user of ``url`` ("" if it ran)."""
    with database(url) as conn:
        try:
            conn.run(statement)
        except pg8000.native.DatabaseError as error:
            return str(error.args[0]["C"])
    return ""


def audit_log(users: Users) -> list[list[Any]]:
    with database(users.admin) as admin:
        rows: list[list[Any]] = admin.run(
            "SELECT action, source, value_count, reason FROM login_etl_pii_audit ORDER BY id"
        )
    return rows


def test_db_init_made_everything_owned_by_the_admin_and_reruns_as_a_no_op(
    users: Users, tmp_path: Path
) -> None:
    with database(users.admin) as admin:
        owners = admin.run(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c"
            " WHERE c.relname IN ('user_logins', 'login_etl_processed_messages',"
            " 'user_logins_decoded', 'login_etl_prune_position', 'login_etl_pii_audit')"
            " ORDER BY 1"
        )
    assert [owner for _, owner in owners] == ["login_etl_admin"] * 5

    again = login_etl(users.admin, "db", "init", cwd=tmp_path)

    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == (
        "already there: user_logins, login_etl_processed_messages, user_logins_decoded,"
        " login_etl_prune_position, login_etl_pii_audit"
    )
    by_operator = login_etl(users.operator, "db", "init", cwd=tmp_path)
    assert by_operator.returncode == 1
    assert len(by_operator.stderr.strip().splitlines()) == 1
    assert "run `login-etl db init` as the database's owner" in by_operator.stderr


def test_the_function_loads_through_its_role_and_cannot_read_back(
    users: Users, queue: Provisioned, keys: KeyStore, tmp_path: Path
) -> None:
    assert load(queue, users, 3) == {"batchItemFailures": []}
    with database(users.admin) as admin:
        assert admin.run("SELECT count(*) FROM user_logins") == [[3]]
        redelivered = admin.run("SELECT message_id FROM login_etl_processed_messages")
    # A redelivery reads the ledger back (INSERT ... RETURNING needs its SELECT grant).
    assert len(redelivered) == 3

    assert refused(users.function, "SELECT masked_ip FROM user_logins") == "42501"
    assert refused(users.function, "SELECT * FROM user_logins_decoded") == "42501"
    assert refused(users.function, "DELETE FROM user_logins") == "42501"
    assert refused(users.function, "UPDATE login_etl_processed_messages SET message_id = 'x'") == (
        "42501"
    )
    unmask = login_etl(
        users.function, "unmask", "--where", "user_id=u0", "--reason", "INC-3", cwd=tmp_path
    )
    assert unmask.returncode == 1
    assert unmask.stdout == ""
    assert "permission denied for table user_logins" in unmask.stderr


def test_the_function_isolates_a_refused_row_through_its_role(
    users: Users, queue: Provisioned, keys: KeyStore
) -> None:
    """The isolation of refused rows (a PL/pgSQL block, transaction-local settings) needs no
    grant beyond the function role's: the DBA's own CHECK refuses one row of three."""
    with database(users.admin) as admin:
        admin.run("ALTER TABLE user_logins ADD CONSTRAINT not_u1 CHECK (user_id <> 'u1')")

    response = load(queue, users, 3)

    assert len(response["batchItemFailures"]) == 1
    with database(users.admin) as admin:
        assert admin.run("SELECT user_id FROM user_logins ORDER BY 1") == [["u0"], ["u2"]]


def test_the_function_prunes_its_ledger_through_its_role(
    users: Users, queue: Provisioned, keys: KeyStore
) -> None:
    load(queue, users, 3)
    with database(users.admin) as admin:
        admin.run(
            "UPDATE login_etl_processed_messages SET processed_at = now() - interval '90 days'"
            " WHERE message_id IN (SELECT message_id FROM login_etl_processed_messages LIMIT 2)"
        )
    with patched_environ({"DATABASE_URL": users.function}):
        summary = lambda_handler({"action": "prune-ledger"}, LocalContext())

    assert summary["deleted"] == 2
    with database(users.admin) as admin:
        assert admin.run("SELECT count(*) FROM login_etl_processed_messages") == [[1]]
        assert admin.run("SELECT count(*) FROM user_logins") == [[3]]


def test_the_function_skips_a_redelivered_message_through_its_role(
    users: Users, queue: Provisioned, keys: KeyStore
) -> None:
    body = json.dumps(
        {
            "user_id": "u",
            "app_version": "1.0",
            "device_type": "ios",
            "ip": IP,
            "locale": "RU",
            "device_id": DEVICE,
        }
    )
    send_bodies(boto3.client("sqs"), queue.queue_url, [body])
    event = receive_event(queue, 1)
    with patched_environ({"DATABASE_URL": users.function}):
        first = lambda_handler(event, LocalContext())
        again = lambda_handler(event, LocalContext())  # the same messageId, delivered twice

    assert first == again == {"batchItemFailures": []}
    with database(users.admin) as admin:
        assert admin.run("SELECT count(*) FROM user_logins") == [[1]]


def test_an_operator_reports_and_unmasks_with_its_grants_and_no_more(
    users: Users, queue: Provisioned, keys: KeyStore, tmp_path: Path
) -> None:
    load(queue, users, 2)
    token = keys.keyring().current.mask(DEVICE)

    report = login_etl(users.operator, "report", cwd=tmp_path)
    by_filter = login_etl(
        users.operator, "unmask", "--where", "user_id=u1", "--reason", "GDPR-1", cwd=tmp_path
    )
    given = login_etl(users.operator, "unmask", "-", "--reason", "INC-7", cwd=tmp_path, stdin=token)

    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines()[0].split() == ["rows", "2"]
    assert by_filter.returncode == 0, by_filter.stderr
    [row] = [json.loads(line) for line in by_filter.stdout.splitlines()]
    assert (row["user_id"], row["ip"], row["device_id"]) == ("u1", IP, DEVICE)
    assert given.returncode == 0, given.stderr
    assert json.loads(given.stdout) == {"token": token, "value": DEVICE}
    assert audit_log(users) == [
        ["unmask", "table", 2, "GDPR-1"],
        ["unmask", "stdin", 1, "INC-7"],
    ]

    # Lesser: an operator cannot read or change the audit trail, nor rewrite rows (rekey).
    assert refused(users.operator, "SELECT * FROM login_etl_pii_audit") == "42501"
    assert refused(users.operator, "DELETE FROM login_etl_pii_audit") == "42501"
    assert refused(users.operator, "INSERT INTO user_logins (user_id) VALUES ('x')") == "42501"
    rekey = login_etl(users.operator, "rekey", cwd=tmp_path)
    assert rekey.returncode == 1
    assert without_target_line(rekey.stderr).strip() == (
        "login-etl: rekey is the database admin's, by design: it rewrites every row of"
        " user_logins, which an operator may only read (permission denied for table user_logins)."
        " Run it with the admin's DATABASE_URL (docs/security.md, Database roles)"
    )


def test_the_admin_rekeys_after_a_rotation(
    users: Users, queue: Provisioned, keys: KeyStore, tmp_path: Path
) -> None:
    load(queue, users, 2)
    old, new = keys.rotate()

    rekey = login_etl(users.admin, "rekey", "--reason", "rotation", cwd=tmp_path)

    assert rekey.returncode == 0, rekey.stderr
    assert rekey.stdout.strip() == f"re-keyed 2 rows in 1 batches to key {new:08x}"
    with database(users.admin) as admin:
        assert admin.run("SELECT action, value_count, key_ids FROM login_etl_pii_audit") == [
            ["rekey", 4, [f"{old:08x}"]]
        ]


def test_a_missing_audit_table_stops_an_operator_with_one_worded_line(
    users: Users, keys: KeyStore, tmp_path: Path
) -> None:
    token = keys.keyring().current.mask(IP)
    with database(users.admin) as admin:
        admin.run("DROP TABLE login_etl_pii_audit")

    stopped = login_etl(users.operator, "unmask", token, "--reason", "INC-8", cwd=tmp_path)
    recreated = login_etl(users.admin, "db", "init", cwd=tmp_path)
    works = login_etl(users.operator, "unmask", token, "--reason", "INC-8", cwd=tmp_path)

    assert stopped.returncode == 1
    assert stopped.stdout == ""
    assert stopped.stderr == (
        "login-etl: the audit table login_etl_pii_audit is missing and this database user"
        " cannot change that (permission denied for schema public): nothing was unmasked."
        " The admin runs `login-etl db init`\n"
    )
    assert recreated.stdout.splitlines()[0] == "created login_etl_pii_audit"
    assert works.returncode == 0, works.stderr
    assert json.loads(works.stdout)["value"] == IP


def test_an_audit_table_of_an_earlier_version_is_completed_by_db_init(
    users: Users, keys: KeyStore, tmp_path: Path
) -> None:
    token = keys.keyring().current.mask(IP)
    with database(users.admin) as admin:
        admin.run("DROP TABLE login_etl_pii_audit")
        admin.run(LEGACY_AUDIT_TABLE)

    stopped = login_etl(users.operator, "unmask", token, "--reason", "INC-8", cwd=tmp_path)
    completed = login_etl(users.admin, "db", "init", cwd=tmp_path)
    works = login_etl(users.operator, "unmask", token, "--reason", "INC-8", cwd=tmp_path)

    assert stopped.returncode == 1
    assert stopped.stdout == ""
    assert "login_etl_pii_audit has no key_ids column and this database user" in stopped.stderr
    assert completed.returncode == 0, completed.stderr
    assert works.returncode == 0, works.stderr
    assert audit_log(users) == [["unmask", "args", 1, "INC-8"]]


# The audit table as login-etl made it before key ids (and identity ids) were recorded.
LEGACY_AUDIT_TABLE = """
CREATE TABLE login_etl_pii_audit(
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  caller_arn text NOT NULL,
  action varchar(16) NOT NULL,
  source varchar(16) NOT NULL,
  filter jsonb,
  reason text,
  value_count integer NOT NULL)
"""
