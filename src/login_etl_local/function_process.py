"""The function in a process of its own, kept warm between invocations, as Lambda's container.

``login-etl run`` (its event source mapping and schedule emulators) and ``login-etl dlq
redrive`` against the local stack invoke the handler through this, never in their own process,
so the function meets what it meets in Lambda and nothing else:

* its own process (``python -m login_etl_local.function_host``), started on the first
  invocation (the cold start) and kept for the next ones (warm: its connection, its key);
* the environment Lambda gives it: the function's variables (this process's environment, which
  holds the stack's) and Lambda's own (``AWS_LAMBDA_FUNCTION_NAME``, ``..._MEMORY_SIZE``);
* each invocation with its deadline; an answer late past it is a timeout, and the process is
  killed, as Lambda ends a sandbox that timed out;
* a handler that raises answers with Lambda's error object and ``FunctionError``
  ("Unhandled"); a process that died answers ``Runtime.ExitError`` and is started again at
  the next invocation;
* no signal from the terminal: the process is in a session of its own, so Ctrl-C reaches the
  CLI only, which kills it (SIGKILL, as Lambda kills a container; what the invocation had not
  committed is rolled back by Postgres). It also dies with the CLI's process if that is killed
  (Linux: the parent-death signal; elsewhere it ends once the invocation it is in returns).

The protocol: one JSON line per invocation on the child's stdin (``event``, ``deadline_ms``,
``request_id``: what Lambda's runtime API hands a runtime), one JSON line back on a pipe of its
own (``payload``, ``functionError``). The function's own output, its logs, goes to this
process's stderr (where Lambda sends it to CloudWatch): the command's stdout stays its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import IO, Any

from login_etl_cli.invocation import MAX_FUNCTION_S, Invocation, encode_event
from login_etl_cli.signals import shielded

HANDLER = "login_etl.handler.lambda_handler"  # the template's Handler
FUNCTION_NAME = "login-etl-local"
MEMORY_MB = 512  # the template's FunctionMemory default
# How late past its deadline an answer may come before the invocation counts as timed out:
# the time to read and write the answer, not more.
LATE_ANSWER_S = 2.0
STDERR = 2  # the file descriptor, whatever object sys.stderr is at the time


def lambda_environment(function_name: str, memory_mb: int) -> dict[str, str]:
    """The variables Lambda sets in every function's environment (those this one can read)."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "PYTHONUNBUFFERED": "1",  # its logs as they are written, as CloudWatch shows them
    }


class FunctionProcess:
    """Invokes the handler in a warm process of its own; ``close`` (or the ``with``) kills it."""

    def __init__(
        self,
        *,
        handler: str = HANDLER,
        timeout_s: float = MAX_FUNCTION_S,
        environment: Mapping[str, str] | None = None,
        function_name: str = FUNCTION_NAME,
        memory_mb: int = MEMORY_MB,
    ) -> None:
        self.handler = handler
        self.timeout_s = timeout_s
        self.function_name = function_name
        self.memory_mb = memory_mb
        # The function's configuration is fixed when it is deployed: here, when it is made.
        self._environment = {
            **(os.environ if environment is None else environment),
            **lambda_environment(function_name, memory_mb),
        }
        self._process: subprocess.Popen[bytes] | None = None
        self._answers = -1  # the read end of the answers' pipe
        self._pending = b""
        self.cold_starts = 0

    @property
    def pid(self) -> int | None:
        """The running process's pid, if one runs."""
        return None if self._process is None else self._process.pid

    def invoke(self, event: dict[str, Any]) -> Invocation:
        """One invocation: the handler's answer, or Lambda's error for what went wrong."""
        deadline = time.time() + self.timeout_s
        request = encode_event(
            {"event": event, "deadline_ms": int(deadline * 1000), "request_id": str(uuid.uuid4())}
        )
        if not self._send(request + b"\n"):
            return self._died()
        answer = self._answer(deadline + LATE_ANSWER_S)
        if answer is None:
            self.close()
            return _error("Sandbox.Timedout", f"Task timed out after {self.timeout_s:.2f} seconds")
        if not answer:
            return self._died()
        decoded = json.loads(answer)
        return Invocation(decoded["payload"], decoded["functionError"])

    def close(self) -> None:
        """Kill the process (and whatever it started), as Lambda ends a container."""
        process, self._process = self._process, None
        if process is None:
            return
        with shielded():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            os.close(self._answers)
            self._answers, self._pending = -1, b""

    def __enter__(self) -> FunctionProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, request: bytes) -> bool:
        """Hand the request to a running process; a fresh one if it died since the last."""
        for _ in range(2):  # died between invocations, before reading this one: once more
            requests = self._running()
            try:
                requests.write(request)
                requests.flush()
            except BrokenPipeError:
                self.close()
                continue
            return True
        return False

    def _running(self) -> IO[bytes]:
        """The running process's stdin: the process started (cold) if none runs."""
        if self._process is not None and self._process.poll() is not None:
            self.close()
        process = self._process or self._start()
        if process.stdin is None:
            raise RuntimeError("the function's process has no stdin")
        return process.stdin

    def _start(self) -> subprocess.Popen[bytes]:
        answers, answer_end = os.pipe()
        try:
            with shielded():  # started and remembered in one step: close() finds it
                self._process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "login_etl_local.function_host",
                        self.handler,
                        str(answer_end),
                        str(os.getpid()),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=STDERR,  # its logs are diagnostics, not the command's output
                    pass_fds=(answer_end,),
                    env=self._environment,
                    start_new_session=True,  # the terminal's Ctrl-C is not the function's
                )
                self._answers = answers
        except BaseException:
            os.close(answers)
            raise
        finally:
            os.close(answer_end)
        self.cold_starts += 1
        return self._process

    def _answer(self, deadline: float) -> bytes | None:
        """The next answer line; b"" if the process ended first, None at the deadline."""
        while b"\n" not in self._pending:
            left = deadline - time.time()
            if left <= 0 or not select.select([self._answers], [], [], left)[0]:
                return None
            chunk = os.read(self._answers, 1 << 16)
            if not chunk:
                return b""
            self._pending += chunk
        answer, _, self._pending = self._pending.partition(b"\n")
        return answer

    def _died(self) -> Invocation:
        """The process ended before it answered: Lambda's error for a runtime that exited."""
        code = None
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._process.wait(timeout=LATE_ANSWER_S)
        self.close()
        return _error("Runtime.ExitError", f"the function's process exited (status {code})")


def _error(kind: str, message: str) -> Invocation:
    return Invocation({"errorType": kind, "errorMessage": message}, "Unhandled")
