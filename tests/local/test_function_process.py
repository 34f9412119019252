"""The function in a process of its own: warm, restarted, timed out, killed, as Lambda runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from login_etl_local.function_process import FunctionProcess
from tests.cli_helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
HANDLER = "tests.local.function_handlers.handler"


def function(timeout_s: float = 60.0, **environment: str) -> FunctionProcess:
    return FunctionProcess(
        handler=HANDLER,
        timeout_s=timeout_s,
        environment={**os.environ, "PYTHONPATH": str(ROOT), **environment},
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_the_process_stays_warm_between_invocations() -> None:
    with function() as process:
        first = process.invoke({"do": "answer"})
        second = process.invoke({"do": "answer"})

    assert first.function_error is None
    assert first.payload["pid"] == second.payload["pid"] != os.getpid()
    assert first.payload["request_id"] != second.payload["request_id"]
    assert process.cold_starts == 1
    assert not alive(first.payload["pid"])  # the with killed it


def test_the_function_gets_its_environment_and_lambdas_own() -> None:
    with function(timeout_s=30, DATABASE_URL="postgresql://u@h/d") as process:
        answer = process.invoke(
            {
                "do": "answer",
                "environment": ["DATABASE_URL", "AWS_LAMBDA_FUNCTION_NAME", "MISSING_ONE"],
            }
        ).payload

    assert answer["environment"] == {
        "DATABASE_URL": "postgresql://u@h/d",
        "AWS_LAMBDA_FUNCTION_NAME": "login-etl-local",
        "MISSING_ONE": None,
    }
    assert 25_000 < answer["remaining_ms"] <= 30_000  # counts down to the deadline


def test_the_functions_output_goes_to_stderr_not_the_commands_stdout(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with function() as process:
        process.invoke({"do": "log"})

    out, err = capfd.readouterr()
    assert "a line of the function's log" in err
    assert "a line of the function's log" not in out


def test_an_exception_is_lambdas_error_answer_and_the_process_stays() -> None:
    with function() as process:
        failed = process.invoke({"do": "raise"})
        after = process.invoke({"do": "answer"})

    assert failed.function_error == "Unhandled"
    assert failed.payload == {"errorType": "ValueError", "errorMessage": "refused on purpose"}
    assert after.function_error is None
    assert process.cold_starts == 1


def test_an_answer_json_cannot_carry_is_a_marshal_error() -> None:
    with function() as process:
        answer = process.invoke({"do": "unserialisable"})

    assert answer.function_error == "Unhandled"
    assert answer.payload["errorType"] == "Runtime.MarshalError"


def test_a_process_that_died_is_an_error_then_started_again() -> None:
    with function() as process:
        before = process.invoke({"do": "answer"}).payload["pid"]
        died = process.invoke({"do": "exit"})
        after = process.invoke({"do": "answer"})

    assert died.function_error == "Unhandled"
    assert died.payload == {
        "errorType": "Runtime.ExitError",
        "errorMessage": "the function's process exited (status 3)",
    }
    assert after.function_error is None
    assert after.payload["pid"] != before
    assert process.cold_starts == 2


def test_a_process_killed_between_invocations_is_replaced_for_the_next() -> None:
    with function() as process:
        before = process.invoke({"do": "answer"}).payload["pid"]
        os.kill(before, signal.SIGKILL)
        wait_for(lambda: not alive(before), "the process to die")
        after = process.invoke({"do": "answer"})

    assert after.function_error is None
    assert after.payload["pid"] != before


def test_an_invocation_past_its_deadline_times_out_and_the_process_is_killed() -> None:
    with function(timeout_s=1) as process:
        slow = process.invoke({"do": "sleep", "seconds": 60})
        after = process.invoke({"do": "answer"})

    assert slow.function_error == "Unhandled"
    assert slow.payload["errorType"] == "Sandbox.Timedout"
    assert after.function_error is None
    assert process.cold_starts == 2


def test_the_terminals_signals_do_not_reach_the_function() -> None:
    """Its own session: Ctrl-C goes to the CLI, which kills the process, as Lambda would."""
    with function() as process:
        answer: dict[str, Any] = process.invoke({"do": "answer"}).payload

    assert answer["session"] == answer["pid"] != os.getsid(0)


PARENT = textwrap.dedent(
    """
    import os, sys
    from login_etl_local.function_process import FunctionProcess
    process = FunctionProcess(
        handler=sys.argv[1], environment={**os.environ, "PYTHONPATH": sys.argv[2]}
    )
    print(process.invoke({"do": "answer"}).payload["pid"], flush=True)
    sys.stdin.read()
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal")
def test_the_process_dies_with_the_cli_that_started_it() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, HANDLER, str(ROOT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert alive(child)

    parent.kill()  # SIGKILL: no cleanup of its own runs
    parent.wait()

    wait_for(lambda: not alive(child), "the function's process to die with its parent", 30)
