"""The deployment files agree with each other and with the code (no Docker or AWS needed).

cfn-lint and ``sam validate --lint`` check the template's syntax in ``make lint``; these check
the promises the README makes about it.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.decode import cfn_yaml

from login_etl.adapters.postgres.schema import CREATE_TABLE
from login_etl.config import KMS_ENCRYPTION_CONTEXT
from tests.template_helpers import refusals

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE: dict[str, Any] = cfn_yaml.load(str(ROOT / "template.yaml"))
RESOURCES = TEMPLATE["Resources"]
FUNCTION = RESOURCES["LoginEtlFunction"]["Properties"]
SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())


def words(sql: str) -> list[str]:
    return re.sub(r"--[^\n]*", "", sql).replace("(", " ( ").replace(")", " ) ").split()


def test_queue_visibility_is_six_times_every_allowed_function_timeout() -> None:
    allowed = TEMPLATE["Parameters"]["FunctionTimeout"]["AllowedValues"]
    mapping = TEMPLATE["Mappings"]["VisibilityTimeout"]
    # The same strings: a Number parameter with integer values finds no key on LocalStack.
    assert set(mapping) == set(allowed)
    assert all(entry["Seconds"] == 6 * int(timeout) for timeout, entry in mapping.items())


def test_runtime_is_a_current_python_on_one_architecture_arm64_by_default() -> None:
    function = TEMPLATE["Globals"]["Function"]
    assert function["Runtime"] in {"python3.12", "python3.13"}
    assert function["Architectures"] == [{"Ref": "Architecture"}]
    parameter = TEMPLATE["Parameters"]["Architecture"]
    assert parameter["Default"] == "arm64"  # what is deployed unless someone says otherwise
    assert set(parameter["AllowedValues"]) == {"arm64", "x86_64"}


def unconditional(statements: list[Any]) -> list[dict[str, Any]]:
    """The statements, with each optional one (``Fn::If``: statement or nothing) included."""
    found = []
    for statement in statements:
        if "Fn::If" in statement:
            _, when_on, _ = statement["Fn::If"]
            found.append(when_on)
        else:
            found.append(statement)
    return found


def test_no_iam_statement_allows_every_resource() -> None:
    documents = [p["PolicyDocument"] for p in RESOURCES["LoginEtlRole"]["Properties"]["Policies"]]
    documents += [
        resource["Properties"]["PolicyDocument"]
        for resource in RESOURCES.values()
        if resource["Type"] == "AWS::IAM::ManagedPolicy"
    ]
    statements = [s for document in documents for s in unconditional(document["Statement"])]
    assert len(documents) == 4
    assert all(statement["Resource"] != "*" for statement in statements)
    context = {f"kms:EncryptionContext:{k}": v for k, v in KMS_ENCRYPTION_CONTEXT.items()}
    kms = [s for s in statements if str(s["Action"]).startswith("kms:")]
    assert len(kms) == 3
    assert all(s["Condition"]["StringEquals"] == context for s in kms)


def test_the_function_cannot_make_or_list_keys() -> None:
    role = RESOURCES["LoginEtlRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    actions = {
        a
        for s in unconditional(role["Statement"])
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert "kms:GenerateDataKey" not in actions
    assert "ssm:GetParametersByPath" not in actions
    assert "ssm:PutParameter" not in actions


def test_iam_database_authentication_reaches_one_user_only() -> None:
    role = RESOURCES["LoginEtlRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    connect = [s for s in unconditional(role["Statement"]) if s["Action"] == "rds-db:connect"]
    assert len(connect) == 1
    arn = connect[0]["Resource"]["Fn::Sub"][0]
    assert arn.endswith(":dbuser:${Id}/${DbIamUser}")  # one user, never dbuser:*/*


@pytest.mark.parametrize(
    "options",
    [
        ["DbAuth=iam", "DbIamUser=lambda", "DbResourceId=db-ABCDEFGH", "DbSslMode=verify-full"],
        [
            "EnableRdsProxy=true",
            "DbInstanceIdentifier=logins",
            "SubnetIds=subnet-12345678",
            "SecurityGroupIds=sg-12345678",
            "DbSslMode=verify-full",
        ],
        [
            "EnableRdsProxy=true",
            "DbAuth=iam",
            "DbIamUser=lambda",
            "DbInstanceIdentifier=logins",
            "SubnetIds=subnet-12345678",
            "DbSslMode=verify-full",
        ],
    ],
)
def test_the_template_lints_clean_with_each_database_option(options: list[str]) -> None:
    secret = "DatabaseSecretArn=arn:aws:secretsmanager:us-east-1:123456789012:secret:db"
    lint = subprocess.run(
        [
            str(Path(sys.executable).with_name("cfn-lint")),
            str(ROOT / "template.yaml"),
            "--parameters",
            secret,
            *options,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_both_triggers_exist_and_can_be_switched_off() -> None:
    events = FUNCTION["Events"]
    sqs = events["LoginQueue"]["Properties"]
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs["Enabled"] == {"Fn::If": ["SqsTriggerOn", True, False]}
    # MaximumConcurrency unless 0 (provisioned pollers, which exclude it): Lambda refuses both.
    _, on, _ = sqs["ScalingConfig"]["Fn::If"]
    assert on == {"MaximumConcurrency": {"Ref": "MaximumConcurrency"}}
    schedule = events["DrainSchedule"]
    assert schedule["Type"] == "Schedule"
    assert schedule["Properties"]["State"] == {"Fn::If": ["ScheduleOn", "ENABLED", "DISABLED"]}


def test_local_invoke_only_sets_variables_the_template_declares() -> None:
    # `sam local invoke --env-vars` silently ignores variables the function does not declare.
    declared = set(FUNCTION["Environment"]["Variables"])
    local = json.loads((ROOT / "events" / "env.local.json").read_text())
    assert set(local) == {"LoginEtlFunction"}
    assert set(local["LoginEtlFunction"]) <= declared


def test_the_endpoint_variable_is_declared_for_sam_local_but_never_deployed() -> None:
    # LocalStack applies a function's own variables over the AWS_ENDPOINT_URL it injects: a
    # deployed "" replaced it. NoValue drops the key once deployed; SAM still sees it declared.
    variables = FUNCTION["Environment"]["Variables"]
    assert variables["AWS_ENDPOINT_URL"] == {"Ref": "AWS::NoValue"}


def environment_overrides(environment: str, command: str = "deploy") -> dict[str, str]:
    """What SAM takes: the command's parameter_overrides, else the environment's global ones."""
    config = SAMCONFIG[environment]
    line = config.get(command, {}).get("parameters", {}).get("parameter_overrides") or config[
        "global"
    ]["parameters"].get("parameter_overrides", "")
    return dict(pair.split("=", 1) for pair in line.split())


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_samconfig_deploy_environments(environment: str) -> None:
    config = SAMCONFIG[environment]
    deploy = config["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is (environment == "prod")
    assert config["global"]["parameters"]["region"]
    params = environment_overrides(environment)
    assert set(params) <= set(TEMPLATE["Parameters"])
    assert "DatabaseSecretArn" not in params  # saved by deploy-guided, or given by CI
    assert ("sync" in config) is (environment == "dev")  # sam sync skips change sets


def test_samconfig_environments_share_no_stack_and_no_data_key() -> None:
    """dev and prod may share an account: their stacks and SSM parameters must differ."""
    default = TEMPLATE["Parameters"]["DataKeyParameterName"]["Default"]
    stacks = {SAMCONFIG[env]["global"]["parameters"]["stack_name"] for env in ("dev", "prod")}
    keys = {
        environment_overrides(env).get("DataKeyParameterName", default) for env in ("dev", "prod")
    }
    assert len(stacks) == len(keys) == 2


def test_samconfig_has_a_local_environment() -> None:
    local = SAMCONFIG["local"]["local_invoke"]["parameters"]
    assert (ROOT / local["env_vars"]).is_file()
    assert (ROOT / local["event"]).is_file()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert local["docker_network"] == compose["networks"]["default"]["name"]


def test_sam_local_environment_invokes_the_host_build_without_a_registry() -> None:
    # `make test-sam-local` (login_etl_local.sam_local) reads these and writes the env file.
    local = SAMCONFIG["sam-local"]
    build, invoke = local["build"]["parameters"], local["local_invoke"]["parameters"]
    assert invoke["template_file"] == f"{build['build_dir']}/template.yaml"
    assert invoke["skip_pull_image"] is True  # no registry in CI: SAM must not ask one
    assert invoke["env_vars"].startswith(".aws-sam/")  # generated, never committed
    assert "Architecture" not in invoke["parameter_overrides"]  # the host's, added at run time
    overrides = dict(pair.split("=", 1) for pair in invoke["parameter_overrides"].split())
    assert set(overrides) <= set(TEMPLATE["Parameters"])


def test_sam_local_deploys_the_build_it_invokes_with_values_the_template_accepts() -> None:
    local = SAMCONFIG["sam-local"]
    deploy = local["deploy"]["parameters"]
    assert deploy["template_file"] == local["local_invoke"]["parameters"]["template_file"]
    assert deploy["confirm_changeset"] is False  # nobody to answer in CI
    overrides = dict(pair.split("=", 1) for pair in shlex.split(deploy["parameter_overrides"]))
    assert "Architecture" not in overrides  # the host's, added at run time
    assert set(overrides) <= set(TEMPLATE["Parameters"])
    assert refusals(TEMPLATE, overrides) == []
    for name, value in overrides.items():
        allowed = TEMPLATE["Parameters"][name].get("AllowedValues")
        assert allowed is None or value in [str(v) for v in allowed], name


def test_compose_runs_localstack_and_postgres_with_the_exact_table() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"localstack", "postgres"}
    assert all("healthcheck" in service for service in services.values())
    env = json.loads((ROOT / "events" / "env.local.json").read_text())["LoginEtlFunction"]
    assert env["AWS_ENDPOINT_URL"].startswith("http://localstack:4566")
    assert "@postgres:5432/" in env["DATABASE_URL"]
    mount = next(v for v in services["postgres"]["volumes"] if "initdb" in v)
    init_sql = (ROOT / mount.split(":")[0]).read_text()
    assert words(init_sql) == [*words(CREATE_TABLE), ";"]


def test_no_snapstart_while_the_data_key_is_held_in_memory() -> None:
    """docs/security.md#snapstart-refused: a snapshot would carry the decrypted data key."""
    assert "SnapStart" not in FUNCTION
    assert "SnapStart" not in TEMPLATE["Globals"]["Function"]
    assert "snapstart-refused" in heading_anchors((ROOT / "docs/security.md").read_text())


def test_every_setting_the_function_reads_is_in_the_deployment_table() -> None:
    """A setting added without a row would be one no deployer knows of."""
    read = set(
        re.findall(r'"([A-Z][A-Z0-9_]{3,})"', (ROOT / "src/login_etl/config.py").read_text())
    )
    table = (ROOT / "docs/deploying.md").read_text()
    lambdas_own = {name for name in read if name.startswith(("AWS_LAMBDA_", "LAMBDA_"))}
    assert {name for name in read - lambdas_own if f"| `{name}` |" not in table} == set()


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces -> '-'."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_pointers_from_the_deployment_files_name_sections_that_exist() -> None:
    """Sections moved from the README into docs/; the comments kept pointing at the README."""
    files = ["samconfig.toml", "template.yaml", "requirements.txt", "Makefile"]
    files += [".github/workflows/ci.yml"]
    texts = {name: (ROOT / name).read_text() for name in files}
    pointers = [
        (name, page, anchor)
        for name, text in texts.items()
        for page, anchor in re.findall(r"((?:docs/)?[\w-]+\.md)#([\w-]+)", text)
    ]
    assert len(pointers) >= 4
    missing = [
        (name, f"{page}#{anchor}")
        for name, page, anchor in pointers
        if anchor not in heading_anchors((ROOT / page).read_text())
    ]
    assert missing == []
    assert [name for name, text in texts.items() if re.search(r"README[,:] \"", text)] == []


def test_the_deployment_page_lists_every_resource_the_template_creates() -> None:
    """The prune rule and the two managed policies were missing from the list."""
    page = (ROOT / "docs" / "deploying.md").read_text()
    table = page[page.index("What the template creates") : page.index("The template's `Rules`")]
    listed = set(re.findall(r"`(\w+)`", table))
    assert (set(RESOURCES) | set(FUNCTION["Events"])) - listed == set()
