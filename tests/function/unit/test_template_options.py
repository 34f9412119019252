"""The template's options: each lints clean on and off, and the Rules refuse, before anything
is created, the combinations Lambda itself would refuse halfway through a deployment.

``sam validate`` takes no parameter values, so each combination is a copy of the template
whose parameters default to it; cfn-lint and ``sam validate --lint`` both read that copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.template_helpers import ROOT, load_template, refusals

TEMPLATE = load_template()
FUNCTION = TEMPLATE["Resources"]["LoginEtlFunction"]["Properties"]
SQS_EVENT = FUNCTION["Events"]["LoginQueue"]["Properties"]
SAM = ROOT / ".venv-tools" / "bin" / "sam"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db"

EVERY_OPTION_ON = {
    "EnableProvisionedPollers": "true",
    "MaximumConcurrency": "0",
    "MinimumPollers": "3",
    "MaximumPollers": "20",
    "EnableTracing": "true",
    "EnableDashboard": "true",
    "LogLevel": "WARNING",
    "SystemLogLevel": "DEBUG",
    "SubnetIds": "subnet-12345678",  # with tracing: both managed policies on the role
}
EVERY_OPTION_OFF = {
    "EnableProvisionedPollers": "false",
    "MaximumConcurrency": "5",
    "EnableTracing": "false",
    "EnableDashboard": "false",
    "LogLevel": "ERROR",
    "SystemLogLevel": "WARN",
}


def with_defaults(tmp_path: Path, values: dict[str, str]) -> Path:
    """A copy of template.yaml whose parameters default to ``values``."""
    text = (ROOT / "template.yaml").read_text()
    lines = text.splitlines()
    out: list[str] = []
    current = None
    in_parameters = False
    for line in lines:
        if not line.startswith(" "):
            in_parameters = line.startswith("Parameters:")
        elif in_parameters and line.startswith("  ") and not line.startswith("   "):
            current = line.strip().rstrip(":")
            out.append(line)
            if current in values and "Default" not in TEMPLATE["Parameters"][current]:
                out.append(f'    Default: "{values[current]}"')
            continue
        if in_parameters and current in values and line.startswith("    Default:"):
            out.append(f'    Default: "{values[current]}"')
        else:
            out.append(line)
    path = tmp_path / "template.yaml"
    path.write_text("\n".join(out) + "\n")
    return path


def lint(path: Path) -> list[str]:
    """Problems cfn-lint and ``sam validate --lint`` report for this template: none if clean."""
    problems = []
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), str(path)], capture_output=True, text=True, check=False, timeout=300
    )
    if result.returncode:
        problems.append(result.stdout + result.stderr)
    assert SAM.is_file(), "make install creates .venv-tools (the SAM CLI)"
    result = subprocess.run(
        [str(SAM), "validate", "--lint", "--region", "us-east-1", "--template", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    )
    if result.returncode:
        problems.append(result.stdout + result.stderr)
    return problems


@pytest.mark.parametrize(
    "values",
    [{}, EVERY_OPTION_ON, EVERY_OPTION_OFF, {"EnableTracing": "true"}],
    ids=["defaults", "every-option-on", "every-option-off", "tracing-without-vpc"],
)
def test_the_template_lints_clean_with_every_option_on_and_off(
    tmp_path: Path, values: dict[str, str]
) -> None:
    path = with_defaults(tmp_path, {"DatabaseSecretArn": SECRET, **values})
    assert load_template(path)["Parameters"]["EnableTracing"]["Default"] == values.get(
        "EnableTracing", "false"
    )
    assert lint(path) == []


def test_a_copy_with_a_default_the_template_does_not_allow_fails_the_lint(
    tmp_path: Path,
) -> None:
    """The lint of the copies proves something: a wrong default in a copy is reported."""
    path = with_defaults(tmp_path, {"DatabaseSecretArn": SECRET, "EnableTracing": "sometimes"})
    assert len(lint(path)) == 2  # both tools


@pytest.mark.parametrize(
    ("given", "refused"),
    [
        ({"EnableProvisionedPollers": "true"}, "exclude each other"),
        ({"EnableProvisionedPollers": "true", "MaximumConcurrency": "0"}, None),
        ({"MaximumConcurrency": "1"}, "0 (none) or 2 to 1000"),
        ({"MaximumConcurrency": "0"}, None),
        ({"MaximumBatchingWindowInSeconds": "0"}, "BatchSize above 10"),
        ({"MaximumBatchingWindowInSeconds": "0", "BatchSize": "10"}, None),
        ({"DbAuth": "iam"}, "needs DbIamUser"),
        ({}, None),
    ],
)
def test_the_rules_refuse_what_lambda_refuses(given: dict[str, str], refused: str | None) -> None:
    found = refusals(TEMPLATE, {"DatabaseSecretArn": SECRET, **given})
    if refused is None:
        assert found == []
    else:
        assert any(refused in description for description in found), found


def test_provisioned_mode_and_maximum_concurrency_are_never_both_set() -> None:
    scaling, pollers = SQS_EVENT["ScalingConfig"]["Fn::If"], SQS_EVENT["ProvisionedPollerConfig"]
    assert scaling[0] == "HasMaximumConcurrency"
    assert pollers["Fn::If"][0] == "ProvisionedPollersOn"
    conditions = TEMPLATE["Conditions"]
    assert conditions["HasMaximumConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "MaximumConcurrency"}, 0]}]
    }
    # ...and the rule makes provisioned mode imply MaximumConcurrency=0 (tested above).


def test_logging_config_is_json_with_levels_from_the_parameters() -> None:
    config = FUNCTION["LoggingConfig"]
    assert config["LogFormat"] == "JSON"  # Lambda filters JSON lines by their "level"
    assert config["SystemLogLevel"] == {"Ref": "SystemLogLevel"}
    mapping = TEMPLATE["Mappings"]["ApplicationLogLevel"]
    # Every LogLevel has a Lambda name, equal to Powertools' level (else lines are dropped).
    assert set(mapping) == set(TEMPLATE["Parameters"]["LogLevel"]["AllowedValues"])
    assert {name: entry["Lambda"] for name, entry in mapping.items()} == {
        "DEBUG": "DEBUG",
        "INFO": "INFO",
        "WARNING": "WARN",
        "ERROR": "ERROR",
    }
    assert FUNCTION["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}


def test_tracing_is_opt_in_and_brings_its_own_write_permission() -> None:
    assert TEMPLATE["Parameters"]["EnableTracing"]["Default"] == "false"
    assert FUNCTION["Tracing"] == {"Fn::If": ["TracingOn", "Active", "PassThrough"]}
    role = TEMPLATE["Resources"]["LoginEtlRole"]["Properties"]
    by_condition = {p["Fn::If"][0]: p["Fn::If"][1]["Fn::Sub"] for p in role["ManagedPolicyArns"]}
    assert by_condition["TracingOn"].endswith(":iam::aws:policy/AWSXRayDaemonWriteAccess")
