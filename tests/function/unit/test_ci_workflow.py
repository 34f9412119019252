"""The GitHub Actions example (.github/workflows/ci.yml) does what the README says a user runs.

It cannot run here; actionlint checks its syntax in ``make lint``, and these check its content:
the test job runs the README's commands, the deploy jobs the Makefile's deploy target with the
environment GitHub gates, through OIDC.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from typing import Any

import pytest
import yaml

from tests.template_helpers import ROOT

WORKFLOW: dict[Any, Any] = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
JOBS: dict[str, Any] = WORKFLOW["jobs"]
SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
README = (ROOT / "README.md").read_text()


def make_calls(job: str) -> list[list[str]]:
    """The arguments of every ``make`` a job's steps run."""
    calls = []
    for step in JOBS[job]["steps"]:
        for line in step.get("run", "").replace("\\\n", " ").splitlines():
            words = shlex.split(line)
            if words and words[0] == "make":
                calls.append(words[1:])
    return calls


def makefile_targets() -> set[str]:
    result = subprocess.run(
        ["make", "-pRrq"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return set(re.findall(r"^([a-z][a-z-]*):", result.stdout, flags=re.MULTILINE))


def test_the_test_job_runs_the_readmes_commands() -> None:
    named = set(re.findall(r"`make ([a-z-]+)", README))
    targets = [call[0] for call in make_calls("test")]
    assert {"run", "test"} <= named  # the README's two commands
    assert {"run", "test", "lint"} <= set(targets)
    assert set(targets) <= named & makefile_targets()


def test_every_push_and_pull_request_is_tested() -> None:
    triggers = WORKFLOW[True]  # YAML 1.1 reads the key `on` as true
    assert "push" in triggers
    assert "pull_request" in triggers
    assert "if" not in JOBS["test"]


@pytest.mark.parametrize(("job", "environment"), [("deploy-dev", "dev"), ("deploy-prod", "prod")])
def test_deploy_jobs_run_make_deploy_for_their_github_environment(
    job: str, environment: str
) -> None:
    spec = JOBS[job]
    assert spec["environment"] == environment
    assert environment in SAMCONFIG
    calls = make_calls(job)
    assert len(calls) == 1
    target, *variables = calls[0]
    assert target == "deploy"
    assert f"ENV={environment}" in variables
    assert "deploy" in set(re.findall(r"`make ([a-z-]+)", README))


@pytest.mark.parametrize("job", ["deploy-dev", "deploy-prod"])
def test_deploy_jobs_assume_a_role_through_oidc(job: str) -> None:
    spec = JOBS[job]
    assert spec["permissions"]["id-token"] == "write"
    credentials = next(
        step["with"]
        for step in spec["steps"]
        if step.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
    )
    assert "role-to-assume" in credentials
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(credentials)
    environment = spec["environment"]
    assert credentials["aws-region"] == SAMCONFIG[environment]["global"]["parameters"]["region"]


def test_dev_deploys_from_main_only_and_prod_after_dev() -> None:
    assert JOBS["deploy-dev"]["needs"] == "test"
    condition = JOBS["deploy-dev"]["if"]
    assert "github.ref == 'refs/heads/main'" in condition
    assert "github.event_name == 'push'" in condition
    assert JOBS["deploy-prod"]["needs"] == "deploy-dev"


def test_actions_are_pinned_to_commits() -> None:
    uses = [step["uses"] for job in JOBS.values() for step in job["steps"] if "uses" in step]
    assert uses
    assert [u for u in uses if not re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u)] == []


def test_the_workflow_gives_no_job_more_than_read_by_default() -> None:
    assert WORKFLOW["permissions"] == {"contents": "read"}
