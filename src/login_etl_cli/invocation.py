"""Invoking the function the way Lambda's ``Invoke`` does, wherever the function runs.

``login-etl dlq redrive`` hands the dead letters to the function itself. In AWS (or an
emulator that runs Lambda functions) that is ``Invoke`` with ``RequestResponse`` on the
function ``FUNCTION_NAME`` names (``LambdaFunction``). Against the local stack there is no
deployed function: the function runs on this machine, in a process of its own, as
``login-etl run`` runs it. That process is ``login_etl_local``'s, which plugs it in through the
entry point ``login_etl.functions`` (``local_function``): the CLI imports nothing of it.

Both answer with an ``Invocation``: the payload, and Lambda's ``FunctionError`` when the
handler raised (or its process died, or it ran out of time).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

LOCAL_FUNCTIONS = "login_etl.functions"  # the entry-point group
# The longest a function may run (Lambda's maximum timeout), and a margin: a RequestResponse
# Invoke holds the connection open that long, where boto3's default read timeout is 60 s.
MAX_FUNCTION_S = 900
READ_TIMEOUT_S = MAX_FUNCTION_S + 30


def encode_event(event: object) -> bytes:
    """An event as the bytes sent: compact JSON in UTF-8 (what the 6 MB payload limit counts)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Invocation:
    """What one invocation returned, as ``Invoke`` reports it."""

    payload: Any  # the handler's response; with ``function_error``, Lambda's error object
    function_error: str | None = None  # "Unhandled" when the handler raised, died or timed out

    def error_summary(self) -> str:
        """The error's type and message, as Lambda's error object gives them."""
        payload = self.payload if isinstance(self.payload, dict) else {}
        kind = payload.get("errorType", "unknown error")
        message = payload.get("errorMessage", "")
        return f"{self.function_error}: {kind}" + (f": {message}" if message else "")


@runtime_checkable
class Function(Protocol):
    """The function, ready to be invoked (a context manager: a process may have to stop)."""

    def invoke(self, event: dict[str, Any]) -> Invocation: ...

    def __enter__(self) -> Function: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class LambdaFunction:
    """A deployed function, invoked synchronously through Lambda's API."""

    def __init__(self, name: str, client: LambdaClient | None = None) -> None:
        self.name = name
        # Throttles and connection errors are retried (an invocation retried after a timeout
        # may run twice: the ledger writes its messages once).
        self._client = client or boto3.client(
            "lambda",
            config=Config(
                read_timeout=READ_TIMEOUT_S,
                connect_timeout=10,
                retries={"mode": "standard", "max_attempts": 5},
            ),
        )

    def invoke(self, event: dict[str, Any]) -> Invocation:
        """``Invoke`` with ``RequestResponse``: the function's answer, or its error."""
        response = self._client.invoke(
            FunctionName=self.name,
            InvocationType="RequestResponse",
            Payload=encode_event(event),
        )
        raw = response["Payload"].read()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = {"errorType": "MalformedPayload", "errorMessage": "the answer is not JSON"}
            return Invocation(payload, response.get("FunctionError") or "Unhandled")
        return Invocation(payload, response.get("FunctionError"))

    def __enter__(self) -> LambdaFunction:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


def local_function() -> Function:
    """The function run on this machine, as ``login-etl run`` runs it (``login_etl_local``)."""
    found = list(entry_points(group=LOCAL_FUNCTIONS, name="local"))
    if not found:
        raise LookupError(
            "no function to invoke: set FUNCTION_NAME (the deployed function's name or ARN);"
            " the local stack's function process is not installed here (login_etl_local)"
        )
    factory = found[0].load()
    function: Function = factory()
    return function
