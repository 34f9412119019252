"""Errors that say what really happened: arguments, files, pipes, Postgres's refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pg8000.native
import pytest

from login_etl_local.stack_record import LocalStack
from tests.cli_helpers import command_env, login_etl, without_target_line

BINARY = bytes(range(256))


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "binary.json").write_bytes(BINARY)
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "broken.json").write_text('[{"user_id": "x"},')
    (tmp_path / "empty.json").write_text("\n")
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["seed", "--count", "-5"], "argument --count: must be 1 or more, got -5"),
        (["run", "--count", "0"], "argument --count: must be 1 or more, got 0"),
        (
            ["seed", "--malformed-ratio", "2"],
            "argument --malformed-ratio: must be between 0 and 1 (a share), got 2",
        ),
        (
            ["seed", "--file", "binary.json"],
            "argument --file: binary.json is not UTF-8 text (byte 0x80 at offset 128): give a"
            " JSON array of messages or one message per line",
        ),
        (["run", "--file", "missing.json"], "argument --file: missing.json: no such file"),
        (["seed", "--file", "a-directory"], "argument --file: a-directory is a directory"),
        (
            ["seed", "--file", "broken.json"],
            "argument --file: broken.json: starts with '[' but is not a JSON array (line 1:",
        ),
        (["seed", "--file", "empty.json"], "argument --file: empty.json holds no messages"),
        (["report", "--top", "-1"], "argument --top: must be between 1 and 10,000, got -1"),
        (["unmask", "--limit", "-1", "x"], "argument --limit: must be 1 or more, got -1"),
        (["unmask", "x"], "the following arguments are required: --reason"),
        (
            ["unmask", "--where", "ip=10.0.0.1", "--reason", "t"],
            "argument --where: ip=...: ip is masked, it cannot be matched; filter by user_id,",
        ),
        (
            ["unmask", "--where", "1=1 OR user_id=x", "--reason", "t"],
            "argument --where: takes column=value with a column among user_id,",
        ),
        (["unmask", "x", "--reason", "  "], "argument --reason: say why: a ticket or request id"),
        (["rekey", "--batch-size", "0"], "argument --batch-size: must be between 1 and"),
        (["stack", "up", "--max-receive-count", "0"], "argument --max-receive-count: must be"),
    ],
)
def test_wrong_arguments_are_refused_before_anything_is_done(
    files: Path, argv: list[str], message: str
) -> None:
    # With the environment of a stack that does not exist: nothing may be tried on it.
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "QUEUE_URL": "http://127.0.0.1:1/q"}
    result = login_etl(*argv, cwd=files, env=env)

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"login-etl {argv[0]}")
    assert message in line
    assert "Traceback" not in result.stderr
    assert not (files / ".local-stack").exists()


def stack_env(stack: LocalStack, **extra: str) -> dict[str, str]:
    return {**stack.environment(), **extra}


def test_a_reader_that_went_away_is_no_error(stack: LocalStack, tmp_path: Path) -> None:
    """`login-etl dlq show | head -0`: the pipe is closed before anything is written."""
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as closed:
        result = subprocess.run(
            [sys.executable, "-m", "login_etl_cli", "dlq", "show"],
            stdout=closed,
            stderr=subprocess.PIPE,
            text=True,
            env=command_env(stack_env(stack)),
            cwd=tmp_path,
            timeout=300,
            check=False,
        )

    assert without_target_line(result.stderr) == ""
    assert result.returncode == 141  # as a shell reports a reader that went away


@pytest.fixture
def fresh_database(stack: LocalStack) -> Iterator[str]:
    """A database with nothing in it, on the session's server."""
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    admin = admin_connection(stack)
    admin.run(f"CREATE DATABASE {name}")
    yield stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    admin.run(f"DROP DATABASE {name} WITH (FORCE)")
    admin.close()


def admin_connection(stack: LocalStack) -> pg8000.native.Connection:
    return pg8000.native.Connection(
        "postgres", host="127.0.0.1", password="postgres", port=_port(stack)
    )


def _port(stack: LocalStack) -> int:
    return int(stack.database_url.rsplit(":", 1)[1].split("/")[0])


def test_rekey_of_a_database_without_the_table_is_one_worded_line(
    stack: LocalStack, fresh_database: str, tmp_path: Path
) -> None:
    result = login_etl("rekey", cwd=tmp_path, env=stack_env(stack, DATABASE_URL=fresh_database))

    assert result.returncode == 1
    assert without_target_line(result.stderr) == (
        "login-etl: there is no user_logins table in this database, nothing to re-key:"
        " check DATABASE_URL\n"
    )


def test_no_connection_slot_left_is_one_worded_line(stack: LocalStack, tmp_path: Path) -> None:
    admin = admin_connection(stack)
    admin.run("DROP ROLE IF EXISTS crowded")
    admin.run("CREATE ROLE crowded LOGIN PASSWORD 'crowded' CONNECTION LIMIT 0")  # 53300
    url = f"postgresql://crowded:crowded@127.0.0.1:{_port(stack)}/postgres"
    try:
        result = login_etl("report", cwd=tmp_path, env=stack_env(stack, DATABASE_URL=url))
    finally:
        admin.run("DROP ROLE crowded")
        admin.close()

    assert result.returncode == 1
    assert without_target_line(result.stderr) == (
        f"login-etl: Postgres at postgresql://crowded:***@127.0.0.1:{_port(stack)}/postgres"
        " refused: no connection slot left (max_connections is reached): close idle sessions"
        " (pg_stat_activity) or raise max_connections\n"
    )


def test_unmask_of_an_empty_pipe_says_so(stack: LocalStack, tmp_path: Path) -> None:
    result = login_etl(
        "unmask", "-", "--reason", "INC-1", cwd=tmp_path, env=stack_env(stack), stdin=""
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "login-etl: no tokens on stdin: nothing to unmask (did the command before the pipe fail?)\n"
    )


def queued(queue_url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def test_run_with_a_wrong_database_password_sends_nothing(
    stack: LocalStack, tmp_path: Path
) -> None:
    before = queued(stack.provisioned.queue_url)
    wrong = stack.database_url.replace(":postgres@", ":wrong@")

    result = login_etl(
        "run", "--count", "50", cwd=tmp_path, env=stack_env(stack, DATABASE_URL=wrong)
    )

    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("refused: wrong user or password in DATABASE_URL")
    )
    assert "sent" not in result.stdout
    assert queued(stack.provisioned.queue_url) == before


@pytest.mark.parametrize(
    "argv",
    [["--debug", "report"], ["report", "--debug"], ["dlq", "show", "--debug"]],
    ids=["before the command", "after it", "after an action"],
)
def test_debug_shows_the_traceback_wherever_it_is_given(tmp_path: Path, argv: list[str]) -> None:
    result = login_etl(*argv, cwd=tmp_path)  # no stack here: an error

    assert result.returncode == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("login_etl_cli.targets.TargetError: no stack to use")
    )
