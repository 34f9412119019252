"""Reading template.yaml as CloudFormation would: its Rules evaluated, its dashboard's metrics.

cfn-lint checks the template's syntax but evaluates neither the Rules against parameter values
nor what a dashboard body (a JSON string) selects; these small readers let tests do both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[1]


def load_template(path: Path = ROOT / "template.yaml") -> dict[str, Any]:
    template: dict[str, Any] = cfn_yaml.load(str(path))
    return template


def parameter_values(template: dict[str, Any], given: dict[str, str]) -> dict[str, Any]:
    """Every parameter's value as a rule sees it: strings, lists for CommaDelimitedList."""
    values: dict[str, Any] = {}
    for name, spec in template["Parameters"].items():
        value = str(given.get(name, spec.get("Default", "")))
        values[name] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value
    return values


def _evaluate(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_evaluate(item, values) for item in node]
    if not isinstance(node, dict):
        return str(node)
    (function, argument), *rest = node.items()
    assert not rest, node
    if function == "Ref":
        return values[argument]
    args = _evaluate(argument, values)
    if function == "Fn::Equals":
        return args[0] == args[1]
    if function == "Fn::Not":
        return not args[0]
    if function == "Fn::And":
        return all(args)
    if function == "Fn::Or":
        return any(args)
    if function == "Fn::Contains":
        return args[1] in args[0]
    if function == "Fn::Join":
        return args[0].join(args[1])
    raise AssertionError(f"no evaluator for {function}")


def refusals(template: dict[str, Any], given: dict[str, str]) -> list[str]:
    """The AssertDescription of every rule assertion these parameters fail, as CloudFormation
    would refuse the stack before creating anything."""
    values = parameter_values(template, given)
    refused = []
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not _evaluate(rule["RuleCondition"], values):
            continue
        refused += [
            " ".join(a["AssertDescription"].split())
            for a in rule["Assertions"]
            if not _evaluate(a["Assert"], values)
        ]
    return refused


@dataclass(frozen=True)
class MetricView:
    """One metric a dashboard widget or an alarm selects."""

    namespace: str
    name: str
    dimensions: dict[str, str]  # name -> value; for a SEARCH, the values it fixes
    dimension_names: frozenset[str]  # every dimension of the metrics selected


def dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's JSON with ``${...}`` replaced: numbers by their default, names by
    themselves (``${LoginQueue.QueueName}`` -> ``LoginQueue.QueueName``)."""
    text = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    parameters = template["Parameters"]

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        spec = parameters.get(name)
        return str(spec["Default"]) if spec and spec["Type"] == "Number" else name

    body: dict[str, Any] = json.loads(re.sub(r"\$\{([\w:.]+)\}", value, text))
    return body


SEARCH = re.compile(r"SEARCH\('\{([^}]*)\}(.*?)',")


def dashboard_metrics(template: dict[str, Any]) -> list[MetricView]:
    """Every metric of every widget: plain entries and SEARCH expressions."""
    views = []
    for widget in dashboard_body(template)["widgets"]:
        for entry in widget.get("properties", {}).get("metrics", []):
            specs = [e for e in entry if not isinstance(e, dict)]
            if specs:
                namespace, name, *pairs = specs
                dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
                views.append(MetricView(namespace, name, dimensions, frozenset(dimensions)))
            for option in (e for e in entry if isinstance(e, dict)):
                search = SEARCH.search(option.get("expression", ""))
                if search:
                    namespace, *names = search.group(1).split(",")
                    terms = dict(re.findall(r'(\w+)="([^"]*)"', search.group(2)))
                    name = terms.pop("MetricName")
                    views.append(MetricView(namespace, name, terms, frozenset(names)))
    return views


def alarm_metrics(template: dict[str, Any]) -> dict[str, MetricView]:
    """Every alarm's metric, by the alarm's logical id."""
    views = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            props = resource["Properties"]
            dimensions = {d["Name"]: d["Value"] for d in props.get("Dimensions", [])}
            views[logical_id] = MetricView(
                props["Namespace"], props["MetricName"], dimensions, frozenset(dimensions)
            )
    return views
