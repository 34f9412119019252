"""The command lines `make deploy`, `make deploy-guided` and `make invoke` run (``make -n``:
AWS and a container engine are out of reach here, the commands are not)."""

from __future__ import annotations

import platform
import shlex
import subprocess
import tomllib

import pytest

from tests.template_helpers import ROOT

SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
SAM = ".venv-tools/bin/sam"


def planned(*args: str) -> list[list[str]]:
    """The commands ``make -n`` prints, each split into words, continuation lines joined
    (``--always-make``: with the builds made already, and not)."""
    result = subprocess.run(
        ["make", "-n", "--always-make", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.replace("\\\n", " ").splitlines()]


def sam_command(commands: list[list[str]], *subcommand: str) -> list[str]:
    found = [
        words[words.index(SAM) + 1 :]
        for words in commands
        if SAM in words and tuple(words[words.index(SAM) + 1 :][: len(subcommand)]) == subcommand
    ]
    assert len(found) == 1, commands
    return found[0]


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_deploy_uses_the_samconfig_environment(environment: str) -> None:
    words = sam_command(planned("deploy", f"ENV={environment}"), "deploy")
    assert option(words, "--config-env") == environment
    assert "--parameter-overrides" not in words  # samconfig's own, untouched
    assert "--guided" not in words


def test_deploy_is_dev_unless_told() -> None:
    assert option(sam_command(planned("deploy"), "deploy"), "--config-env") == "dev"


def test_deploy_params_are_added_to_the_environments_overrides_not_instead() -> None:
    """On the command line --parameter-overrides replaces samconfig's: the target repeats them."""
    words = sam_command(
        planned(
            "deploy", "ENV=prod", "PARAMS=DatabaseSecretArn=arn:x", "ARGS=--no-execute-changeset"
        ),
        "deploy",
    )
    given = option(words, "--parameter-overrides").split()
    configured = SAMCONFIG["prod"]["deploy"]["parameters"]["parameter_overrides"].split()
    assert given == [*configured, "DatabaseSecretArn=arn:x"]
    assert words[-1] == "--no-execute-changeset"


def test_dev_overrides_come_from_the_environments_global_section() -> None:
    words = sam_command(planned("deploy", "PARAMS=DatabaseSecretArn=arn:x"), "deploy")
    configured = SAMCONFIG["dev"]["global"]["parameters"]["parameter_overrides"].split()
    assert option(words, "--parameter-overrides").split() == [
        *configured,
        "DatabaseSecretArn=arn:x",
    ]


def test_deploy_guided_asks_and_saves_in_the_environment() -> None:
    words = sam_command(planned("deploy-guided", "ENV=prod"), "deploy")
    assert "--guided" in words
    assert option(words, "--config-env") == "prod"


def test_deploy_ships_the_arm64_build_of_make_build() -> None:
    """`make deploy` deploys `make build`'s .aws-sam/build, never an invoke build."""
    result = subprocess.run(
        ["make", "-pn", "deploy"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    rule = next(line for line in result.stdout.splitlines() if line.startswith("deploy:"))
    assert rule.split(":", 1)[1].split() == [".aws-sam/build/template.yaml"]


HOST = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"


@pytest.mark.parametrize("arch", [None, "arm64", "x86_64"])
def test_invoke_builds_and_runs_one_architecture_the_hosts_unless_named(arch: str | None) -> None:
    expected = arch or HOST
    commands = planned("invoke", *([f"ARCH={arch}"] if arch else []))
    build = next(words for words in commands if SAM in words and "build" in words)
    assert f"LAMBDA_ARCH={expected}" in build  # the wheels the Makefile recipe installs
    build_words = build[build.index(SAM) + 1 :]
    build_dir = option(build_words, "--build-dir").rstrip("/")
    assert build_dir == f".aws-sam/invoke-{expected}/build"  # a build per architecture
    assert option(build_words, "--parameter-overrides") == f"Architecture={expected}"
    invoke = sam_command(commands, "local", "invoke")
    assert option(invoke, "--template-file") == f"{build_dir}/template.yaml"
    assert option(invoke, "--config-env") == "local"
    overrides = option(invoke, "--parameter-overrides").split()
    configured = SAMCONFIG["local"]["local_invoke"]["parameters"]["parameter_overrides"].split()
    assert overrides == [*configured, f"Architecture={expected}"]


def test_invoke_refuses_an_architecture_lambda_does_not_have() -> None:
    result = subprocess.run(
        ["make", "-n", "invoke", "ARCH=i386"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "ARCH is arm64 or x86_64, not 'i386'" in result.stderr
