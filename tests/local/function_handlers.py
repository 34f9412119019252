"""A handler for the function process's tests: does what the event says, in its process."""

from __future__ import annotations

import os
import signal
import time
from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    """``{"do": ...}``: answer, raise, exit, sleep, log, or answer what JSON cannot carry."""
    action = event["do"]
    if action == "raise":
        raise ValueError("refused on purpose")
    if action == "exit":
        os._exit(3)
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "unserialisable":
        return {"when": object()}
    if action == "log":
        print("a line of the function's log", flush=True)
    return {
        "pid": os.getpid(),
        "session": os.getsid(0),
        "sigint": str(signal.getsignal(signal.SIGINT)),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "environment": {name: os.environ.get(name) for name in event.get("environment", [])},
    }
