"""What ``make test-sam-local`` hands to ``tests/sam_local``, and how those tests call SAM.

The session (``session.py``) prepares everything and writes this context to a JSON file named by
``LOGIN_ETL_SAM_LOCAL``; the tests only invoke and check. Kept free of the engine and image code
so that the tests import nothing they do not use.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CONTEXT_VARIABLE = "LOGIN_ETL_SAM_LOCAL"
SAMCONFIG_ENV = "sam-local"  # the samconfig.toml environment made for this
FUNCTION = "LoginEtlFunction"


@dataclass(frozen=True)
class SamLocalConfig:
    """``[sam-local.*]`` of samconfig.toml: where SAM builds, reads its env file, which network."""

    build_dir: Path
    template: Path
    env_vars: Path
    network: str
    parameter_overrides: str
    deploy_overrides: str  # what `sam deploy` to LocalStack gives the template

    @classmethod
    def load(cls, root: Path) -> SamLocalConfig:
        config = tomllib.loads((root / "samconfig.toml").read_text())[SAMCONFIG_ENV]
        build = config["build"]["parameters"]
        invoke = config["local_invoke"]["parameters"]
        deploy = config["deploy"]["parameters"]
        return cls(
            build_dir=root / build["build_dir"],
            template=root / invoke["template_file"],
            env_vars=root / invoke["env_vars"],
            network=invoke["docker_network"],
            parameter_overrides=invoke["parameter_overrides"],
            deploy_overrides=deploy["parameter_overrides"],
        )


@dataclass(frozen=True)
class SamLocalContext:
    """A prepared run: SAM, the engine, the host's architecture, the stack on both sides."""

    root: str
    sam: str
    docker_host: str
    architecture: str
    host_environment: dict[str, str]  # the stack as the host reaches it (loopback)
    container_environment: dict[str, str]  # the same stack as the container reaches it
    timings_file: str
    localstack_environments_file: str  # what LocalStack would give a deployed function

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def from_environment(cls) -> SamLocalContext | None:
        """The context the session wrote, or None outside ``make test-sam-local``."""
        path = os.environ.get(CONTEXT_VARIABLE)
        return cls(**json.loads(Path(path).read_text())) if path else None

    def invoke_command(self, event: Path) -> list[str]:
        """``sam local invoke`` with the samconfig environment; only the architecture added.

        ``--parameter-overrides`` on the command line replaces samconfig's, so samconfig's
        value is repeated with ``Architecture`` appended.
        """
        config = SamLocalConfig.load(Path(self.root))
        overrides = f"{config.parameter_overrides} Architecture={self.architecture}"
        return [
            self.sam, "local", "invoke", FUNCTION,
            "--config-env", SAMCONFIG_ENV,
            "--event", str(event),
            "--parameter-overrides", overrides,
        ]  # fmt: skip

    def invoke(self, event: Path) -> tuple[dict[str, Any], str]:
        """Run ``sam local invoke`` on ``event``: (the function's response, SAM's log output).

        An invocation that times out with no response is invoked once more, as Lambda retries
        it: once, in one CI run, the first invoke after ``make test`` hung for the whole
        function timeout while every later one took 2 s (cause not found; docs/sam-local.md).
        A function that hangs for real times out twice and fails the check.
        """
        done, seconds = self._invoke_once(event)
        if _timed_out(done):
            print(
                f"sam-local: invoke {event.name} timed out after {seconds:.0f} s with no"
                " response: invoking it once more, as Lambda retries",
                flush=True,
            )
            done, seconds = self._invoke_once(event)
        if done.returncode != 0 or not done.stdout.strip():
            raise AssertionError(
                f"sam local invoke gave exit code {done.returncode} and no response after"
                f" {seconds:.0f} s; its output:\n{done.stderr[-6000:]}"
            )
        response: dict[str, Any] = json.loads(done.stdout)
        return response, done.stderr

    def _invoke_once(self, event: Path) -> tuple[subprocess.CompletedProcess[str], float]:
        started = time.monotonic()
        done = subprocess.run(
            self.invoke_command(event),
            cwd=self.root,
            env={
                **os.environ,
                "DOCKER_HOST": self.docker_host,
                "SAM_CLI_TELEMETRY": "0",
                # What SAM gives the container as credentials and region: LocalStack takes any.
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": self.host_environment["AWS_REGION"],
                "AWS_DEFAULT_REGION": self.host_environment["AWS_REGION"],
                # SAM asks STS for the account id before it invokes: LocalStack's, not AWS's
                # (a variable the template does not declare, so the container never sees it).
                "AWS_ENDPOINT_URL_STS": self.host_environment["AWS_ENDPOINT_URL"],
            },
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        return done, self.timed(f"invoke {event.name}", started)

    def deploy_command(self) -> list[str]:
        """``sam deploy`` with the samconfig environment; only the architecture added."""
        config = SamLocalConfig.load(Path(self.root))
        overrides = f"{config.deploy_overrides} Architecture={self.architecture}"
        return [
            self.sam, "deploy",
            "--config-env", SAMCONFIG_ENV,
            "--parameter-overrides", overrides,
        ]  # fmt: skip

    def deploy(self) -> str:
        """``sam deploy`` of the built template to the LocalStack of this run; its output."""
        started = time.monotonic()
        done = subprocess.run(
            self.deploy_command(),
            cwd=self.root,
            env={**os.environ, **self.aws_environment(), "SAM_CLI_TELEMETRY": "0"},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        seconds = self.timed("sam deploy", started)
        if done.returncode != 0:
            raise AssertionError(
                f"sam deploy to LocalStack gave exit code {done.returncode} after {seconds:.0f} s;"
                f" its output:\n{done.stdout[-6000:]}{done.stderr[-3000:]}"
            )
        return done.stdout

    def aws_environment(self) -> dict[str, str]:
        """What points boto3 and SAM at this run's LocalStack, from the host."""
        return {
            "AWS_ENDPOINT_URL": self.host_environment["AWS_ENDPOINT_URL"],
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": self.host_environment["AWS_REGION"],
            "AWS_DEFAULT_REGION": self.host_environment["AWS_REGION"],
        }

    def timed(self, step: str, started: float) -> float:
        """Seconds since ``started``, also written to the timings the session prints."""
        seconds = time.monotonic() - started
        with Path(self.timings_file).open("a") as timings:
            timings.write(json.dumps({"step": step, "seconds": round(seconds, 2)}) + "\n")
        return seconds


def _timed_out(done: subprocess.CompletedProcess[str]) -> bool:
    """SAM's own words for a function that gave no response within its timeout."""
    return not done.stdout.strip() and "timed out after" in done.stderr
