"""``python -m login_etl_local.function_host HANDLER FD PARENT``: one local Lambda container.

What Lambda's Python runtime does for a container, for ``function_process``: import the
handler's module once (the init phase), then for each invocation read the event, call the
handler with a context whose remaining time counts down to the invocation's deadline, and
answer with its response, or with Lambda's error object if it raised (the traceback goes to
stderr, the function's log). Requests come one JSON line each on stdin, answers go one JSON
line each to the pipe ``FD``. It ends when stdin closes (its invoker is gone), and, on Linux,
with the process ``PARENT`` if that is killed.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from login_etl_local.event_source_mapping import LocalContext

Handler = Callable[[dict[str, Any], Any], Any]
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def main(argv: list[str]) -> int:
    """Serve invocations until stdin closes."""
    handler_name, answer_fd, parent = argv
    _die_with(int(parent))
    handler = _load(handler_name)
    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "login-etl-local")
    memory_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"))
    with os.fdopen(int(answer_fd), "wb") as answers:
        for line in sys.stdin.buffer:
            request = json.loads(line)
            context = LocalContext(
                function_name=function_name,
                memory_limit_in_mb=memory_mb,
                timeout_s=max(0.0, request["deadline_ms"] / 1000 - time.time()),
                aws_request_id=request["request_id"],
            )
            try:
                answers.write(_invoke(handler, request["event"], context) + b"\n")
                answers.flush()
            except BrokenPipeError:
                return 0  # the invoker is gone: nobody is waiting for this answer
    return 0


def _invoke(handler: Handler, event: dict[str, Any], context: LocalContext) -> bytes:
    """The handler's answer as the invoker reads it: its payload and Lambda's FunctionError."""
    try:
        payload = handler(event, context)
    except Exception as error:
        traceback.print_exc()  # Lambda logs it; the caller gets the type and message only
        return _answer(_error_object(error), "Unhandled")
    try:
        return _answer(payload, None)
    except (TypeError, ValueError) as error:  # a response JSON cannot carry
        return _answer(
            {"errorType": "Runtime.MarshalError", "errorMessage": str(error)}, "Unhandled"
        )


def _answer(payload: object, function_error: str | None) -> bytes:
    return json.dumps({"payload": payload, "functionError": function_error}).encode()


def _error_object(error: Exception) -> dict[str, str]:
    return {"errorType": type(error).__name__, "errorMessage": str(error)}


def _load(name: str) -> Handler:
    """``module.function``, imported as Lambda imports the Handler setting."""
    module, _, function = name.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module), function)
    return handler


def _die_with(parent: int) -> None:
    """Be killed when ``parent`` dies, as a container dies with its host (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the line above
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
