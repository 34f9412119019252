"""Everything the function emits while processing real data, searched for PII and key material.

Logs (at DEBUG, with ``POWERTOOLS_LOGGER_LOG_EVENT=true`` trying to make the logger print the
event), EMF metrics, the responses of both triggers, and the exceptions of failed invocations
(Postgres unreachable, a DATABASE_URL that does not parse, a data key KMS refuses) are
captured; no raw ``ip`` or ``device_id`` of the input, no form of the data key and no piece of
the URL's password may appear in any of it.

The second test turns on DEBUG for every library, as Lambda's advanced logging controls do
(``ApplicationLogLevel: DEBUG`` sets the root logger), and reads every record of every logger
while the function runs with its secrets in Secrets Manager and SSM: botocore would otherwise
log the KMS plaintext, the database password and the SQS bodies it receives.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pg8000.native
import pytest

from login_etl.adapters import aws
from login_etl.adapters.config_stores import read_parameter
from login_etl.config import KMS_ENCRYPTION_CONTEXT, Settings, connection_params_from_url
from login_etl.handler import lambda_handler
from login_etl.observability import logger
from login_etl.runtime import reset_runtime
from login_etl_cli.sample_data import generate_labelled
from login_etl_cli.seeding import send_bodies
from login_etl_local.event_source_mapping import LocalContext, run_event_source_mapping
from login_etl_local.provisioning import Provisioned
from login_etl_local.schedule import run_schedule
from login_etl_local.stack_record import LocalStack, patched_environ
from tests.postgres_helpers import given_table
from tests.real_data import REAL_DATA
from tests.sqs_helpers import receive_event


@pytest.fixture
def loud(stack: object) -> Iterator[None]:
    """The most talkative configuration a careless operator could set."""
    logger.setLevel(logging.DEBUG)
    with patched_environ({"POWERTOOLS_LOGGER_LOG_EVENT": "true", "DRAIN_WAIT_SECONDS": "0"}):
        yield
    logger.setLevel(logging.INFO)


def bodies(malformed_ratio: float) -> list[str]:
    real = [json.dumps(r) for r in json.loads(REAL_DATA.read_text())] if REAL_DATA.exists() else []
    return real + [body for body, _ in generate_labelled(200, 13, malformed_ratio)]


def pii_values(all_bodies: list[str]) -> set[str]:
    """Every ip and device_id string in the input, valid or not (6+ chars: no false hits)."""
    values = set()
    for body in all_bodies:
        try:
            message = json.loads(body)
        except ValueError:
            continue
        if isinstance(message, dict):
            for field in ("ip", "device_id"):
                value = message.get(field)
                if isinstance(value, str) and len(value) >= 6:
                    values.add(value)
    return values


def key_forms(queue: Provisioned) -> set[str]:
    blob = base64.b64decode(read_parameter(boto3.client("ssm"), queue.data_key_parameter))
    key = boto3.client("kms").decrypt(CiphertextBlob=blob, EncryptionContext=KMS_ENCRYPTION_CONTEXT)
    plaintext = key["Plaintext"]
    forms = {repr(plaintext)[2:-1]}  # the bytes as a logged dict or tuple would show them
    for part in (plaintext, plaintext[:16], plaintext[16:]):
        forms |= {
            base64.b64encode(part).decode(),
            base64.urlsafe_b64encode(part).decode(),
            part.hex(),
        }
    return forms


def test_nothing_the_function_emits_carries_pii_or_key_material(
    queue: Provisioned,
    db: pg8000.native.Connection,
    loud: None,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    function_logs: io.StringIO,
) -> None:
    # The event source mapping gets every kind of message; the drain only valid ones, since
    # its failures would wait out the queue's 30 s visibility timeout (same report code).
    mixed = bodies(malformed_ratio=0.1)
    valid = [body for body, _ in generate_labelled(200, seed=14, malformed_ratio=0)]
    inputs = mixed + valid
    sqs = boto3.client("sqs")
    emitted: list[str] = []

    def recording(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = lambda_handler(event, context)
        except Exception as error:
            emitted.append("".join(traceback.format_exception(error)))
            raise
        emitted.append(json.dumps(response))
        return response

    send_bodies(sqs, queue.queue_url, mixed)
    run_event_source_mapping(sqs, queue.queue_url, recording, batch_size=50)
    send_bodies(sqs, queue.queue_url, valid)
    run_schedule(sqs, queue.queue_url, recording)
    assert db.run("SELECT count(*) FROM user_logins")[0][0] > 200

    # Failed invocations: Postgres unreachable, then a data key KMS refuses.
    send_bodies(sqs, queue.queue_url, inputs[:20])
    event = receive_event(queue, 20)
    for broken in (
        {"DATABASE_URL": "postgresql://login:secret@127.0.0.1:1/nowhere"},
        # An unencoded '/': urlsplit's ValueError quoted "Sup3rS3cret" as the port.
        {"DATABASE_URL": "postgresql://login:Sup3rS3cret/x@127.0.0.1:1/nowhere"},
        {"DATA_KEY_CIPHERTEXT": base64.b64encode(b"\x01" * 184).decode()},
    ):
        reset_runtime()
        with patched_environ(broken), pytest.raises(Exception):  # noqa: B017, PT011
            recording(event, LocalContext())
    reset_runtime()

    captured = capfd.readouterr()
    logs = function_logs.getvalue()
    everything = "\n".join([captured.out, captured.err, caplog.text, logs, *emitted])
    assert '"message":"message left on the queue"' in logs  # the JSON logs, extras included
    assert '"detail":' in logs
    assert '"_aws"' in everything  # and its EMF metrics
    assert "Traceback" in everything  # and the failures
    assert "Sup3r" not in everything
    leaked = sorted(v for v in pii_values(inputs) if v in everything)
    assert leaked == []
    assert [form for form in key_forms(queue) if form in everything] == []


@dataclass(frozen=True)
class SecretDatabase:
    """A database login that exists only in Secrets Manager (and in Postgres)."""

    secret_arn: str
    password: str


@pytest.fixture
def secret_database(stack: LocalStack, db: pg8000.native.Connection) -> Iterator[SecretDatabase]:
    """A Postgres role with a password of its own, stored as the template's RDS-style secret.

    Not the stack's ``postgres``: that word is in every URL and log line, so a leak of it could
    not be told apart.
    """
    role = f"leak_{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(18)
    db.run(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD {pg8000.native.literal(password)}")
    params = connection_params_from_url(stack.database_url, Settings.from_env())
    secret = {
        "host": params.host,
        "port": params.port,
        "username": role,
        "password": password,
        "dbname": params.database,
    }
    arn = boto3.client("secretsmanager").create_secret(
        Name=f"login-etl/{role}", SecretString=json.dumps(secret)
    )["ARN"]
    yield SecretDatabase(arn, password)
    reset_runtime()  # closes the function's connection as that role
    db.run(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
    db.run(f"DROP OWNED BY {role}")
    db.run(f"DROP ROLE {role}")


class EveryRecord(logging.Handler):
    """Keeps each record as text: message, arguments, extras, exception and stack."""

    STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        parts = [record.getMessage(), repr(record.args), record.exc_text or ""]
        if record.exc_info:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
        parts.append(record.stack_info or "")
        parts += [f"{k}={v!r}" for k, v in vars(record).items() if k not in self.STANDARD]
        self.records.append((record.name, "\n".join(parts)))


@contextmanager
def debug_everywhere() -> Iterator[None]:
    """DEBUG on the root logger, as Lambda sets it, and on botocore's, as a user might."""
    root, botocore_logger = logging.getLogger(), logging.getLogger("botocore")
    saved = root.level, botocore_logger.level
    root.setLevel(logging.DEBUG)
    botocore_logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.setLevel(saved[0])
        botocore_logger.setLevel(saved[1])


def capturing(handler: Any, capture: EveryRecord) -> Callable[[dict[str, Any], Any], Any]:
    """``handler`` with ``capture`` on the root logger during each invocation.

    Also on every logger that does not propagate to the root. Only during invocations: the
    records of the test's own SQS calls (sending the bodies, the emulated event source mapping's
    receives) are not what the function emits.
    """

    def invoke(event: dict[str, Any], context: Any) -> Any:
        loggers = [logging.getLogger()] + [
            found
            for found in logging.root.manager.loggerDict.values()
            if isinstance(found, logging.Logger) and not found.propagate
        ]
        for each in loggers:
            each.addHandler(capture)
        try:
            return handler(event, context)
        finally:
            for each in loggers:
                each.removeHandler(capture)

    return invoke


def test_debug_logs_of_every_library_carry_no_secret(
    queue: Provisioned,
    db: pg8000.native.Connection,
    loud: None,
    secret_database: SecretDatabase,
) -> None:
    mixed = bodies(malformed_ratio=0.1)
    valid = [body for body, _ in generate_labelled(150, seed=15, malformed_ratio=0)]
    session_token = "LeakTestSessionToken" + secrets.token_hex(16)
    capture = EveryRecord()
    invoke = capturing(lambda_handler, capture)
    sqs = boto3.client("sqs")
    environment = {
        "DATABASE_URL": "",  # the password comes from Secrets Manager only
        "DATABASE_SECRET_ARN": secret_database.secret_arn,
        "AWS_SESSION_TOKEN": session_token,  # as Lambda's role credentials have one
    }
    with patched_environ(environment), debug_everywhere():
        reset_runtime()  # a cold start inside the capture: GetSecretValue, GetParameter, Decrypt
        aws._client.cache_clear()  # clients that see the session token
        send_bodies(sqs, queue.queue_url, mixed)
        run_event_source_mapping(sqs, queue.queue_url, invoke, batch_size=100)
        send_bodies(sqs, queue.queue_url, valid)
        run_schedule(sqs, queue.queue_url, invoke)  # ReceiveMessage bodies
        reset_runtime()
    aws._client.cache_clear()

    assert db.run("SELECT count(*) FROM user_logins")[0][0] >= len(valid)
    text = "\n".join(f"{name}: {record}" for name, record in capture.records)
    # The capture saw the calls that carry secrets, and useful DEBUG lines survive.
    for operation in ("GetSecretValue", "GetParameter", "Decrypt", "ReceiveMessage"):
        assert f"OperationModel(name={operation})" in text
    assert {"botocore.parsers", "botocore.endpoint", "urllib3.connectionpool"} <= {
        name for name, _ in capture.records
    }
    needles = {
        "database password": [secret_database.password],
        "session token": [session_token],
        "data key": sorted(key_forms(queue)),
        "raw ip or device_id": sorted(pii_values(mixed + valid)),
    }
    leaks = {
        kind: sorted({name for name, record in capture.records if any(v in record for v in values)})
        for kind, values in needles.items()
    }
    assert {kind: loggers for kind, loggers in leaks.items() if loggers} == {}


RAW_IP, RAW_DEVICE = "199.172.111.135", "593-47-5928"


def test_a_database_error_quoting_the_whole_row_carries_no_raw_pii(
    queue: Provisioned, db: pg8000.native.Connection, function_logs: Any
) -> None:
    """pg8000's error dict carries the server's message, detail and context: a trigger that
    quotes NEW in all three reaches the Lambda runtime's error line. Only tokens are there:
    raw values never reach the database."""
    given_table(db)
    db.run(
        "CREATE FUNCTION quote_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        # XX000: not about a row, so the whole invocation fails with the server's text.
        "RAISE EXCEPTION 'row %', NEW USING DETAIL = NEW::text, HINT = NEW::text,"
        " ERRCODE = 'XX000'; END $$"
    )
    db.run(
        "CREATE TRIGGER quote_row BEFORE INSERT ON user_logins"
        " FOR EACH ROW EXECUTE FUNCTION quote_row()"
    )
    body = json.dumps(
        {
            "user_id": "u1",
            "app_version": "2.3.0",
            "device_type": "android",
            "ip": RAW_IP,
            "locale": "RU",
            "device_id": RAW_DEVICE,
        }
    )
    send_bodies(boto3.client("sqs"), queue.queue_url, [body])
    with pytest.raises(pg8000.native.DatabaseError) as raised:
        lambda_handler(receive_event(queue, 1), LocalContext())
    text = f"{raised.value!s} {raised.value!r} {function_logs.getvalue()}"
    assert "row (u1,android," in text  # the row is really quoted...
    assert RAW_IP not in text  # ...as tokens only
    assert RAW_DEVICE not in text
