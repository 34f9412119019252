"""LocalStack's Lambda executor for a machine that reaches no GitHub and no registry.

Copied into LocalStack's own venv (``localstack.ensure_venv``) as the module
``login_etl_localstack_offline``, with an entry point in ``localstack.lambda.runtime_executor``;
it imports LocalStack's plugin library and is never imported by the project itself.

LocalStack's ``docker`` executor, when a function is created, downloads its Lambda init binary
from GitHub (no package ships it) and pulls ``public.ecr.aws/lambda/python`` (it pulls even
when the image is there); offline, every ``AWS::Lambda::Function`` then fails to deploy. This
executor prepares nothing, so the function is created with its configuration, event source
mapping and rules, which is what ``make test-sam-local`` checks of a deployment. It runs
nothing: starting an environment records what LocalStack would give the function (the
variable names and the endpoint it injects, nothing else: no credentials) and then refuses,
saying why. Running the function is ``sam local invoke``'s part.
"""

from __future__ import annotations

import json
import os
from typing import Any

from plux import Plugin

RECORD_VARIABLE = "LOGIN_ETL_LOCALSTACK_ENVIRONMENTS"
WHY = (
    "this LocalStack runs no Lambda function: its init binary is downloaded from GitHub and"
    " its runtime image pulled from a registry, neither reachable here (login-etl runs the"
    " function with `sam local invoke`)"
)


class NoLambdaRuntimeHereError(RuntimeError):
    """Raised for every environment LocalStack asks this executor to start."""


class OfflineExecutor:
    """The methods LocalStack calls on an executor (``RuntimeExecutor``), none of them running."""

    def __init__(self, id: str, function_version: Any) -> None:
        self.id = id
        self.function_version = function_version

    @classmethod
    def prepare_version(cls, function_version: Any) -> None:
        """Nothing to fetch: the function becomes Active."""

    @classmethod
    def cleanup_version(cls, function_version: Any) -> None:
        """Nothing was prepared."""

    @classmethod
    def validate_environment(cls) -> bool:
        """No Docker needed."""
        return True

    def start(self, env_vars: dict[str, str]) -> None:
        """Record the names and the injected endpoint, then refuse."""
        record = os.environ.get(RECORD_VARIABLE)
        if record:
            entry = {
                "function": self.function_version.id.function_name,
                "AWS_ENDPOINT_URL": env_vars.get("AWS_ENDPOINT_URL"),
                "variables": sorted(env_vars),
            }
            with open(record, "a", encoding="utf-8") as file:
                file.write(json.dumps(entry) + "\n")
        raise NoLambdaRuntimeHereError(WHY)

    def stop(self) -> None:
        """Nothing runs."""

    def invoke(self, payload: dict[str, str]) -> Any:  # LocalStack passes payload=...
        del payload
        raise NoLambdaRuntimeHereError(WHY)

    def get_logs(self) -> str:
        return WHY

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        """The host LocalStack names in AWS_ENDPOINT_URL: the one it listens on first."""
        return os.environ.get("LOCALSTACK_HOST", "127.0.0.1").rsplit(":", 1)[0]

    def get_runtime_endpoint(self) -> str:
        return f"http://{self.get_endpoint_from_executor()}/_localstack_lambda/{self.id}"


class OfflineExecutorPlugin(Plugin):  # type: ignore[misc]  # plux is LocalStack's, untyped here
    """The entry point: ``LAMBDA_RUNTIME_EXECUTOR=login-etl-offline``."""

    namespace = "localstack.lambda.runtime_executor"
    name = "login-etl-offline"

    def load(self, *_args: Any, **_kwargs: Any) -> type[OfflineExecutor]:
        return OfflineExecutor
