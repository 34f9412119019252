"""The built template deployed to LocalStack (``sam deploy``), then read back from the outside.

``make test-sam-local`` runs these after the invokes, against the same LocalStack. Each check
compares what LocalStack's CloudFormation created with the template and the parameters samconfig
gives it (``[sam-local.deploy.parameters]``, chosen to differ from the defaults), so a setting
that is dropped or mistranslated on the way shows. Anywhere else these tests are skipped.
"""

from __future__ import annotations

import json
import shlex
import tomllib
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from login_etl_local.sam_local.context import SAMCONFIG_ENV, SamLocalConfig, SamLocalContext
from tests.template_helpers import ROOT, load_template

CONTEXT = SamLocalContext.from_environment()
TEMPLATE = load_template()

pytestmark = pytest.mark.skipif(
    CONTEXT is None, reason="run by `make test-sam-local` (it starts LocalStack)"
)


@dataclass(frozen=True)
class Deployed:
    """The stack as LocalStack reports it, and the parameters it was given."""

    name: str
    parameters: dict[str, str]  # every template parameter: samconfig's value, else the default
    resources: dict[str, str]  # logical id -> physical id
    outputs: dict[str, str]
    clients: dict[str, Any]

    def client(self, service: str) -> Any:
        return self.clients[service]


def given_parameters(context: SamLocalContext) -> dict[str, str]:
    overrides = SamLocalConfig.load(ROOT).deploy_overrides
    given = dict(pair.split("=", 1) for pair in shlex.split(overrides))  # as SAM reads them
    given["Architecture"] = context.architecture
    defaults = {name: str(spec.get("Default", "")) for name, spec in TEMPLATE["Parameters"].items()}
    return {**defaults, **given}


@pytest.fixture(scope="module")
def deployed() -> Deployed:
    assert CONTEXT is not None
    CONTEXT.deploy()
    samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text())
    name = samconfig[SAMCONFIG_ENV]["global"]["parameters"]["stack_name"]
    environment = CONTEXT.aws_environment()
    clients: dict[str, Any] = {
        service: boto3.client(
            service,
            endpoint_url=environment["AWS_ENDPOINT_URL"],
            region_name=environment["AWS_REGION"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )
        for service in ("cloudformation", "sqs", "lambda", "events", "cloudwatch")
    }
    cloudformation = clients["cloudformation"]
    [stack] = cloudformation.describe_stacks(StackName=name)["Stacks"]
    assert stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    resources = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.describe_stack_resources(StackName=name)["StackResources"]
    }
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return Deployed(name, given_parameters(CONTEXT), resources, outputs, clients)


def queue_attributes(deployed: Deployed, url: str) -> dict[str, str]:
    sqs = deployed.client("sqs")
    attributes: dict[str, str] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
        "Attributes"
    ]
    return attributes


def test_the_queue_its_dead_letter_queue_and_redrive_policy(deployed: Deployed) -> None:
    given = deployed.parameters
    queue = queue_attributes(deployed, deployed.outputs["LoginQueueUrl"])
    dlq = queue_attributes(deployed, deployed.outputs["DeadLetterQueueUrl"])

    visibility = TEMPLATE["Mappings"]["VisibilityTimeout"][given["FunctionTimeout"]]["Seconds"]
    assert int(queue["VisibilityTimeout"]) == visibility == 6 * int(given["FunctionTimeout"])
    assert queue["MessageRetentionPeriod"] == given["QueueRetentionSeconds"]
    assert dlq["MessageRetentionPeriod"] == given["DlqRetentionSeconds"]
    redrive = json.loads(queue["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq["QueueArn"]
    assert int(redrive["maxReceiveCount"]) == int(given["MaxReceiveCount"])
    assert queue["SqsManagedSseEnabled"] == dlq["SqsManagedSseEnabled"] == "true"
    [statement] = json.loads(queue["Policy"])["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_event_source_mapping_and_its_settings(deployed: Deployed) -> None:
    given = deployed.parameters
    function_arn = deployed.outputs["FunctionArn"]
    queue_arn = queue_attributes(deployed, deployed.outputs["LoginQueueUrl"])["QueueArn"]

    [mapping] = deployed.client("lambda").list_event_source_mappings(FunctionName=function_arn)[
        "EventSourceMappings"
    ]

    assert mapping["EventSourceArn"] == queue_arn
    assert mapping["BatchSize"] == int(given["BatchSize"])
    assert mapping["MaximumBatchingWindowInSeconds"] == int(given["MaximumBatchingWindowInSeconds"])
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": int(given["MaximumConcurrency"])}
    enabled = given["EnableSqsTrigger"] == "true"
    assert mapping["State"] in (("Enabled", "Enabling") if enabled else ("Disabled", "Disabling"))


def schedule_events() -> dict[str, dict[str, Any]]:
    """The function's Schedule events in the template, by their Description."""
    events = TEMPLATE["Resources"]["LoginEtlFunction"]["Properties"]["Events"]
    return {
        event["Properties"]["Description"]: event["Properties"]
        for event in events.values()
        if event["Type"] == "Schedule"
    }


def test_both_rules_with_their_schedules_states_and_inputs(deployed: Deployed) -> None:
    given = deployed.parameters
    events = deployed.client("events")
    names = events.list_rule_names_by_target(TargetArn=deployed.outputs["FunctionArn"])
    described = [events.describe_rule(Name=name) for name in names["RuleNames"]]
    rules = {rule["Description"]: rule for rule in described}
    expected = schedule_events()
    assert set(rules) == set(expected)

    drain = rules["Drain the login queue (the handler receives and deletes itself)"]
    assert drain["ScheduleExpression"] == given["ScheduleExpression"]
    assert drain["State"] == ("ENABLED" if given["EnableSchedule"] == "true" else "DISABLED")
    prune = rules["Forget ledger entries older than the window a message can come back in"]
    assert prune["ScheduleExpression"] == given["PruneSchedule"]
    assert prune["State"] == "ENABLED"
    for description, rule in rules.items():
        [target] = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert target["Arn"] == deployed.outputs["FunctionArn"]
        wanted = expected[description].get("Input")
        assert (json.loads(target["Input"]) if "Input" in target else None) == (
            json.loads(wanted) if wanted else None
        )


def test_the_function_configuration(deployed: Deployed) -> None:
    given = deployed.parameters
    properties = TEMPLATE["Resources"]["LoginEtlFunction"]["Properties"]

    function = deployed.client("lambda").get_function_configuration(
        FunctionName=deployed.outputs["FunctionArn"]
    )

    assert function["State"] == "Active"
    assert function["Runtime"] == TEMPLATE["Globals"]["Function"]["Runtime"]
    assert function["Handler"] == properties["Handler"]
    assert function["Timeout"] == int(given["FunctionTimeout"])
    assert function["MemorySize"] == int(given["FunctionMemory"])
    assert function["Architectures"] == [given["Architecture"]]
    assert function["Role"].endswith(f"/{deployed.resources['LoginEtlRole']}")
    assert function["LoggingConfig"]["LogGroup"] == deployed.resources["LoginEtlLogGroup"]
    variables = function["Environment"]["Variables"]
    assert variables["QUEUE_URL"] == deployed.outputs["LoginQueueUrl"]
    assert variables["DATA_KEY_PARAMETER"] == given["DataKeyParameterName"]
    assert variables["DATABASE_SECRET_ARN"] == given["DatabaseSecretArn"]
    assert variables["QUEUE_RETENTION_SECONDS"] == given["QueueRetentionSeconds"]
    assert variables["DLQ_RETENTION_SECONDS"] == given["DlqRetentionSeconds"]
    # Declared for `sam local invoke` only: deployed, it must leave the emulator's (or AWS's)
    # endpoint alone.
    assert "AWS_ENDPOINT_URL" not in variables


def expected_dimension(deployed: Deployed, value: Any) -> str:
    """A dimension's value in the template, as the created resources name it."""
    if isinstance(value, str):
        return value
    if "Ref" in value:  # the function
        return deployed.resources[value["Ref"]]
    resource, attribute = value["Fn::GetAtt"]
    assert attribute == "QueueName", value
    return str(deployed.resources[resource]).rstrip("/").rsplit("/", 1)[-1]


def test_every_alarm_of_the_template_watches_what_was_created(deployed: Deployed) -> None:
    given = deployed.parameters
    alarms = {
        logical_id: resource["Properties"]
        for logical_id, resource in TEMPLATE["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }
    names = [deployed.resources[logical_id] for logical_id in alarms]

    found = {
        alarm["AlarmName"]: alarm
        for alarm in deployed.client("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]
    }

    assert set(found) == set(names)
    for logical_id, properties in alarms.items():
        alarm = found[deployed.resources[logical_id]]
        assert alarm["Namespace"] == properties["Namespace"], logical_id
        assert alarm["MetricName"] == properties["MetricName"], logical_id
        threshold = properties["Threshold"]
        wanted = given[threshold["Ref"]] if isinstance(threshold, dict) else threshold
        assert alarm["Threshold"] == float(wanted), logical_id
        assert alarm["EvaluationPeriods"] == int(properties["EvaluationPeriods"]), logical_id
        assert alarm["ComparisonOperator"] == properties["ComparisonOperator"], logical_id
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
            d["Name"]: expected_dimension(deployed, d["Value"]) for d in properties["Dimensions"]
        }, logical_id


def test_the_deployed_function_gets_the_endpoint_the_emulator_injects(deployed: Deployed) -> None:
    assert CONTEXT is not None
    record = CONTEXT.localstack_environments_file

    # LocalStack prepares the function's environment, then its offline executor refuses to run
    # it (no Lambda runtime offline) and records the variables it would have had.
    with pytest.raises(ClientError, match="runs no Lambda function"):
        deployed.client("lambda").invoke(
            FunctionName=deployed.outputs["FunctionArn"], Payload=b'{"action": "prune-ledger"}'
        )

    with open(record, encoding="utf-8") as file:
        last = json.loads(file.read().splitlines()[-1])
    assert last["function"] == deployed.resources["LoginEtlFunction"]
    assert last["AWS_ENDPOINT_URL"] == CONTEXT.host_environment["AWS_ENDPOINT_URL"]
    assert {"QUEUE_URL", "DATABASE_SECRET_ARN", "DATA_KEY_PARAMETER"} <= set(last["variables"])
