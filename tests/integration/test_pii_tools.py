"""Keys, rotation, unmask and rekey against the emulated KMS/SSM/STS and a real Postgres."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pg8000.native
import pytest

from login_etl.domain.masking import DeterministicMasker, token_key_id, token_prefix
from login_etl.handler import lambda_handler
from login_etl.runtime import reset_runtime
from login_etl_tools import cli
from login_etl_tools.event_source_mapping import LocalContext
from login_etl_tools.keys import KeyStore
from login_etl_tools.provisioning import Provisioned
from login_etl_tools.rekey import RekeyProgress, count_stale, rekey
from login_etl_tools.seeding import send_bodies
from login_etl_tools.stack import patched_environ
from tests.sqs_helpers import receive_event

DEVICE, IP = "593-47-5928", "199.172.111.135"


def login(user: str, ip: str = IP, device: str = DEVICE) -> str:
    return json.dumps(
        {
            "user_id": user,
            "app_version": "2.3.0",
            "device_type": "android",
            "ip": ip,
            "locale": "RU",
            "device_id": device,
        }
    )


@pytest.fixture
def keys(queue: Provisioned) -> Iterator[KeyStore]:
    """A data key and keyring of this test's own (SSM names), initialised; the function uses it."""
    prefix = f"/login-etl-test-{uuid.uuid4().hex[:8]}"
    env = {
        "DATA_KEY_PARAMETER": f"{prefix}/data-key",
        "DATA_KEYRING_PATH": f"{prefix}/data-keys",
        "DATA_KEY_MAX_AGE_SECONDS": "0",  # warm containers see a rotation at once
    }
    store = KeyStore(
        boto3.client("ssm"),
        boto3.client("kms"),
        current_parameter=env["DATA_KEY_PARAMETER"],
        keyring_path=env["DATA_KEYRING_PATH"],
        kms_key=queue.kms_key_id,
    )
    with patched_environ(env):
        reset_runtime()
        yield store
    reset_runtime()


def load(queue: Provisioned, bodies: list[str]) -> dict[str, Any]:
    send_bodies(boto3.client("sqs"), queue.queue_url, bodies)
    response: dict[str, Any] = lambda_handler(receive_event(queue, len(bodies)), LocalContext())
    return response


def run_cli(*args: str, stdin: str = "") -> tuple[int, list[dict[str, Any]], str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.StringIO(stdin))
        patch.setattr("sys.stdout", out)
        patch.setattr("sys.stderr", err)
        code = cli.main(list(args))
    return code, [json.loads(line) for line in out.getvalue().splitlines() if line], err.getvalue()


def test_init_is_idempotent_and_rotate_keeps_every_key(keys: KeyStore) -> None:
    first, created = keys.init()
    again, created_again = keys.init()
    previous, new = keys.rotate()

    assert (created, created_again) == (True, False)
    assert first == again == previous != new
    listed = keys.list()
    assert {k.key_id for k in listed} == {first, new}
    assert [k.key_id for k in listed if k.current] == [new]
    assert keys.keyring().key_ids == sorted([first, new])


def test_rotation_reaches_the_function_and_rekey_closes_the_window(
    queue: Provisioned, db: pg8000.native.Connection, keys: KeyStore
) -> None:
    old, _ = keys.init()
    load(queue, [login(f"before-{i}") for i in range(5)])
    _, new = keys.rotate()
    load(queue, [login(f"after-{i}") for i in range(3)])

    # The window: one device, two masked values, until the old rows are re-keyed.
    devices = db.run("SELECT DISTINCT masked_device_id FROM user_logins")
    assert sorted(token_key_id(d[0]) for d in devices) == sorted([old, new])
    ring = keys.keyring()
    assert count_stale(db, ring) == 5

    progress = rekey(db, ring, batch_size=2)

    assert (progress.total, progress.done, progress.batches) == (5, 5, 3)
    assert db.run(
        "SELECT count(DISTINCT masked_device_id), count(DISTINCT masked_ip) FROM user_logins"
    ) == [[1, 1]]
    prefix = token_prefix(new)
    assert db.run("SELECT count(*) FROM user_logins WHERE left(masked_ip, 12) = :p", p=prefix) == [
        [8]
    ]
    assert ring.unmask(db.run("SELECT masked_ip FROM user_logins LIMIT 1")[0][0]) == IP


def test_an_interrupted_rekey_resumes_where_it_stopped(
    queue: Provisioned, db: pg8000.native.Connection, keys: KeyStore
) -> None:
    keys.init()
    load(queue, [login(f"u{i}", ip=f"10.0.0.{i}") for i in range(7)])
    keys.rotate()
    ring = keys.keyring()

    def crash_after_first_batch(progress: RekeyProgress) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rekey(db, ring, batch_size=3, on_batch=crash_after_first_batch)
    assert count_stale(db, ring) == 4  # the first batch committed, nothing else touched

    assert rekey(db, ring, batch_size=3).done == 4
    assert count_stale(db, ring) == 0
    ips = sorted(ring.unmask(r[0]) for r in db.run("SELECT masked_ip FROM user_logins"))
    assert ips == sorted(f"10.0.0.{i}" for i in range(7))


def test_unmask_tokens_reports_each_failure_and_audits_to_the_log(keys: KeyStore) -> None:
    keys.init()
    ring = keys.keyring()
    stranger = DeterministicMasker(bytes(32))
    tokens = [ring.current.mask(IP), "garbage", stranger.mask(IP), ring.current.mask(DEVICE)]

    code, lines, err = run_cli("unmask", *tokens, "--reason", "TICKET-1")

    assert code == 1
    assert [line.get("value") for line in lines] == [IP, None, None, DEVICE]
    assert lines[1]["error"] == "not a Fernet token"
    assert "not in the keyring" in lines[2]["error"]
    audit = json.loads(err.splitlines()[0])
    assert audit["caller_arn"].startswith("arn:aws:")
    assert (audit["action"], audit["source"], audit["value_count"]) == ("unmask", "args", 4)
    assert audit["reason"] == "TICKET-1"
    assert IP not in err
    assert DEVICE not in err


def test_unmask_from_stdin(keys: KeyStore) -> None:
    keys.init()
    token = keys.keyring().current.mask(DEVICE)

    code, lines, _ = run_cli("unmask", "-", stdin=f"{token}\n{token}\n")

    assert code == 0
    assert lines == [{"token": token, "value": DEVICE}] * 2


def test_unmask_rows_by_filter_writes_an_audit_row_first(
    queue: Provisioned, db: pg8000.native.Connection, keys: KeyStore
) -> None:
    keys.init()
    load(queue, [login("alice", ip="10.1.1.1"), login("bob", ip="10.2.2.2")])

    code, lines, _ = run_cli("unmask", "--where", "user_id=bob", "--reason", "GDPR-7")

    assert code == 0
    assert [(line["user_id"], line["ip"], line["device_id"]) for line in lines] == [
        ("bob", "10.2.2.2", DEVICE)
    ]
    audit = db.run(
        "SELECT caller_arn, action, source, filter, reason, value_count FROM login_etl_pii_audit"
    )
    assert len(audit) == 1
    arn, action, source, filters, reason, count = audit[0]
    assert (action, source, filters, reason, count) == (
        "unmask",
        "table",
        {"user_id": "bob"},
        "GDPR-7",
        2,
    )
    assert arn.startswith("arn:aws:")


def test_unmask_refuses_sql_in_a_filter(
    queue: Provisioned, db: pg8000.native.Connection, keys: KeyStore
) -> None:
    keys.init()
    load(queue, [login("x")])

    code, lines, err = run_cli("unmask", "--where", "user_id=x' OR '1'='1")

    assert code == 0
    assert lines == []
    assert db.run("SELECT count(*) FROM user_logins") == [[1]]
    code, _, err = run_cli("unmask", "--where", "1=1 OR user_id=x")
    assert code == 1
    assert err.startswith("login-etl: --where takes column=value")
