"""The operator commands: stack, seed, dlq show, report, and their errors (redrive apart)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pg8000.native
import pytest

from login_etl import config
from login_etl.handler import lambda_handler
from login_etl_cli import main as cli
from login_etl_cli.local_stack import LocalStack, Provisioned, patched_environ
from login_etl_cli.report import build_report
from login_etl_cli.sample_data import generate_labelled
from login_etl_cli.seeding import send_bodies
from login_etl_local.event_source_mapping import run_event_source_mapping
from tests.cli_helpers import login_etl, without_target_line


def test_stack_up_status_down_across_processes(tmp_path: Path) -> None:
    up = login_etl("stack", "up", cwd=tmp_path)
    try:
        assert up.returncode == 0, up.stderr
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in up.stdout.splitlines()
            if line.startswith("export ")
        )
        assert {"AWS_ENDPOINT_URL", "DATABASE_URL", "QUEUE_URL", "DLQ_URL"} <= exports.keys()
        again = login_etl("stack", "up", cwd=tmp_path)
        assert "already running" in again.stdout
        assert exports["AWS_ENDPOINT_URL"] in again.stdout  # the same stack

        seeded = login_etl("seed", "--count", "40", cwd=tmp_path)  # finds the stack by itself
        assert seeded.stdout.startswith("sent 40 messages"), seeded.stderr
        status = login_etl("stack", "status", cwd=tmp_path)
        assert status.returncode == 0
        assert status.stdout.count(" up ") == 2
    finally:
        down = login_etl("stack", "down", cwd=tmp_path)
    assert down.stdout.strip() == "local stack stopped"
    gone = login_etl("stack", "status", cwd=tmp_path)
    assert gone.returncode == 1
    assert gone.stderr.strip() == "login-etl: no local stack: start one with `login-etl stack up`"


def test_dlq_show_counts_by_reason_and_consumes_nothing(
    queue: Provisioned, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = json.dumps({"foo": "oops_wrong_msg_type", "bar": "123"})
    [valid] = [body for body, ok in generate_labelled(1, seed=3, malformed_ratio=0) if ok]
    send_bodies(boto3.client("sqs"), queue.dlq_url, [bad, bad, "not json", valid])
    with patched_environ({"DLQ_URL": queue.dlq_url}):
        assert cli.main(["dlq", "show"]) == 0
        shown = capsys.readouterr().out
        assert cli.main(["dlq", "show"]) == 0
        again = capsys.readouterr().out

    assert shown.splitlines()[0] == f"4 message(s) in {queue.dlq_url}"
    assert "2  missing_keys" in shown
    assert "1  not_json" in shown
    assert "1  valid now" in shown
    assert "oops" not in shown  # reasons, never contents
    assert again == shown


def test_report_counts_what_analysts_see(queue: Provisioned, db: pg8000.native.Connection) -> None:
    labelled = generate_labelled(300, seed=22, malformed_ratio=0, repeat_ratio=0.3)
    send_bodies(boto3.client("sqs"), queue.queue_url, [body for body, _ in labelled])
    run_event_source_mapping(boto3.client("sqs"), queue.queue_url, lambda_handler, batch_size=100)
    logins = [json.loads(body) for body, _ in labelled]

    report = build_report(db, top=3)

    assert report.rows == report.users == 300
    assert report.devices == len({m["device_id"] for m in logins})
    assert report.ips == len({m["ip"] for m in logins})
    assert report.null_locales == sum(m["locale"] is None for m in logins)
    most = max(sum(m["device_id"] == d for m in logins) for d in {m["device_id"] for m in logins})
    assert report.duplicate_devices[0][1] == most
    assert sum(count for _, count in report.per_device_type) == 300


@pytest.mark.parametrize(
    ("argv", "environment", "message"),
    [
        (["report"], {"DATABASE_URL": ""}, "set DATABASE_URL"),
        (
            ["report"],
            {"DATABASE_URL": "postgresql://u:secret@127.0.0.1:1/db"},
            "cannot reach Postgres at postgresql://u:***@127.0.0.1:1/db: is it running?",
        ),
        (
            ["report"],
            {"DATABASE_URL": "__WRONG_PASSWORD__"},
            "Postgres at postgresql://postgres:***@127.0.0.1:",
        ),
        (["seed"], {"QUEUE_URL": ""}, "no queue: QUEUE_URL not set. Set QUEUE_URL and DLQ_URL"),
        (["seed"], {"AWS_DEFAULT_REGION": None, "AWS_REGION": None}, "no AWS region: set"),
        (
            ["seed"],
            {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None},
            "no AWS credentials: set",
        ),
        (
            ["seed"],
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"},
            "cannot reach AWS at http://127.0.0.1:1/: is the stack running?",
        ),
        (["dlq", "show"], {"DLQ_URL": ""}, "no queue: DLQ_URL not set. Set QUEUE_URL and DLQ_URL"),
    ],
)
def test_usual_mistakes_are_one_line_and_exit_1(
    stack: object,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    environment: dict[str, str | None],
    message: str,
) -> None:
    if environment.get("DATABASE_URL") == "__WRONG_PASSWORD__":
        environment = {"DATABASE_URL": os.environ["DATABASE_URL"].replace(":postgres@", ":secret@")}
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches resolved credentials
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookups
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    for name, value in environment.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    code = cli.main(argv)

    err = without_target_line(capsys.readouterr().err)
    assert code == 1
    assert err.startswith(f"login-etl: {message}")
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert "secret" not in err


# Unencoded '/', '#' and '?': urlsplit took "Zq9vK" for the port and said so in its ValueError.
UNENCODED_PASSWORD = "Zq9vK/Wx7#Hm4?Tp"


@pytest.mark.parametrize(
    "argv",
    [
        ["report"],
        ["unmask", "--where", "user_id=x", "--reason", "test"],
        ["rekey", "--reason", "test"],
        ["--debug", "report"],
    ],
)
def test_a_database_url_that_does_not_parse_is_explained_never_echoed(
    stack: LocalStack, tmp_path: Path, argv: list[str]
) -> None:
    url = f"postgresql://postgres:{UNENCODED_PASSWORD}@127.0.0.1:5432/postgres"
    result = login_etl(*argv, cwd=tmp_path, env={**stack.environment(), "DATABASE_URL": url})

    assert result.returncode == 1
    output = result.stdout + result.stderr
    fragments = {UNENCODED_PASSWORD[i : i + 4] for i in range(len(UNENCODED_PASSWORD) - 3)}
    assert sorted(f for f in fragments if f in output) == []
    if argv[0] != "--debug":
        assert result.stderr == f"login-etl: {config.URL_RESERVED}\n"
    else:  # the traceback: this error only, nothing chained
        assert "During handling of the above exception" not in result.stderr
        assert "The above exception was the direct cause" not in result.stderr
