"""``login-etl run`` as a user runs it: a subprocess that starts and stops its own stack."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from login_etl_tools.sample_data import generate_labelled

STACK_VARIABLES = ("AWS_ENDPOINT_URL", "DATABASE_URL", "QUEUE_URL", "DATA_KEY_PARAMETER")


def login_etl(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in STACK_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "login_etl_tools.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def figure(output: str, label: str) -> int:
    match = re.search(rf"^\s+{re.escape(label)}\s+(\d+)$", output, re.MULTILINE)
    assert match, f"no {label!r} in:\n{output}"
    return int(match.group(1))


@pytest.mark.parametrize("mode", ["sqs", "schedule"])
def test_run_loads_the_valid_messages_and_dead_letters_the_rest(mode: str) -> None:
    labelled = generate_labelled(300, seed=5)
    valid = sum(ok for _, ok in labelled)

    result = login_etl("run", "--mode", mode, "--count", "300", "--seed", "5")

    assert result.returncode == 0, result.stderr
    assert figure(result.stdout, "rows written to user_logins") == valid
    assert figure(result.stdout, "messages in the dead-letter queue") == 300 - valid
    assert "local stack stopped" in result.stdout


def test_a_bad_batch_size_is_one_line_and_exit_1() -> None:
    result = login_etl("run", "--batch-size", "20000")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "login-etl: --batch-size must be between 1 and 10000 (the SQS event source maximum)"
    ]
