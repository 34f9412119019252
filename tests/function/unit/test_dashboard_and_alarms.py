"""The dashboard and the alarms watch metrics the code emits, by the names and dimensions it
emits them with: a metric renamed on either side fails here, not silently in CloudWatch.

What the code emits is read from its source (every ``add_metric`` / ``single_metric`` call,
and the dimensions added inside a ``single_metric`` block); that every metric also carries
``service`` is checked against a real batch in tests/function/integration/test_observability.py.
"""

from __future__ import annotations

import ast

import pytest

from login_etl.observability import NAMESPACE, SERVICE
from tests.template_helpers import (
    ROOT,
    MetricView,
    alarm_metrics,
    dashboard_body,
    dashboard_metrics,
    load_template,
)

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]


def _literal_name(call: ast.Call) -> str:
    names = [k.value for k in call.keywords if k.arg == "name"]
    assert len(names) == 1, ast.unparse(call)
    assert isinstance(names[0], ast.Constant), (
        f"a metric name that is not a literal: {ast.unparse(call)}"
    )
    return str(names[0].value)


def _called(node: ast.AST, method: str) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Attribute) and func.attr == method) or (
        isinstance(func, ast.Name) and func.id == method
    )


def emitted_metrics() -> dict[str, frozenset[str]]:
    """Each metric name the function emits -> its dimension names (service on every one)."""
    found: dict[str, frozenset[str]] = {}
    for path in sorted((ROOT / "src" / "login_etl").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if _called(node, "add_metric"):
                assert isinstance(node, ast.Call)
                found[_literal_name(node)] = frozenset({"service"})
            if isinstance(node, ast.With):
                for item in node.items:
                    if _called(item.context_expr, "single_metric"):
                        assert isinstance(item.context_expr, ast.Call)
                        added = {
                            _literal_name(call)
                            for statement in node.body
                            for call in ast.walk(statement)
                            if isinstance(call, ast.Call) and _called(call, "add_dimension")
                        }
                        found[_literal_name(item.context_expr)] = frozenset({"service", *added})
    return found


EMITTED = emitted_metrics()


def own(views: list[MetricView]) -> list[MetricView]:
    return [view for view in views if not view.namespace.startswith("AWS/")]


def test_the_source_scan_finds_the_metrics_the_code_emits() -> None:
    """The scan itself: the documented metrics, and the per-reason one with its dimension."""
    assert {"MessagesReceived", "RowsWritten", "MessagesFailed", "BatchLatency"} <= set(EMITTED)
    assert {"DataKeyRefreshFailed", "LedgerRowsPruned"} <= set(EMITTED)
    assert EMITTED["MessagesFailedByReason"] == {"service", "reason"}


@pytest.mark.parametrize(
    "view",
    own(dashboard_metrics(TEMPLATE)) + own(list(alarm_metrics(TEMPLATE).values())),
    ids=lambda view: view.name,
)
def test_each_own_metric_of_the_dashboard_and_alarms_is_one_the_code_emits(
    view: MetricView,
) -> None:
    assert view.namespace == NAMESPACE
    assert view.name in EMITTED, f"{view.name}: no such metric in src/login_etl"
    assert view.dimension_names == EMITTED[view.name]  # else CloudWatch finds no data
    assert view.dimensions["service"] == SERVICE


def test_the_function_is_configured_with_the_namespace_and_service_the_views_use() -> None:
    variables = RESOURCES["LoginEtlFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
    assert variables["POWERTOOLS_SERVICE_NAME"] == SERVICE


def test_the_dashboard_shows_what_the_runbook_watches() -> None:
    views = dashboard_metrics(TEMPLATE)
    shown = {(v.namespace, v.name, tuple(sorted(v.dimensions.items()))) for v in views}
    names = {v.name for v in own(views)}
    assert {"MessagesReceived", "RowsWritten", "MessagesFailed"} <= names
    assert {"MessagesFailedByReason", "BatchLatency", "LedgerRowsPruned"} <= names
    for queue in ("LoginQueue.QueueName", "LoginDeadLetterQueue.QueueName"):
        depth = ("AWS/SQS", "ApproximateNumberOfMessagesVisible", (("QueueName", queue),))
        assert depth in shown
    age = ("ApproximateAgeOfOldestMessage", (("QueueName", "LoginQueue.QueueName"),))
    assert ("AWS/SQS", *age) in shown
    for name in ("Throttles", "Errors", "Duration"):
        assert ("AWS/Lambda", name, (("FunctionName", "LoginEtlFunction"),)) in shown
    stats = {
        entry[-1].get("stat")
        for widget in dashboard_body(TEMPLATE)["widgets"]
        for entry in widget.get("properties", {}).get("metrics", [])
        if "BatchLatency" in entry
    }
    assert stats == {"p50", "p99"}


def test_the_event_source_mapping_widget_reads_the_mapping_of_this_function() -> None:
    """SAM names the mapping <function><event>; its Ref is the UUID the metrics carry."""
    esm = [v for v in dashboard_metrics(TEMPLATE) if "EventSourceMappingUUID" in v.dimensions]
    assert esm
    assert {v.dimensions["EventSourceMappingUUID"] for v in esm} == {"LoginEtlFunctionLoginQueue"}
    sqs_event = RESOURCES["LoginEtlFunction"]["Properties"]["Events"]["LoginQueue"]["Properties"]
    assert sqs_event["MetricsConfig"] == {"Metrics": ["EventCount"]}


def test_the_alarms_the_runbook_asks_for_exist() -> None:
    alarms = {(v.namespace, v.name) for v in alarm_metrics(TEMPLATE).values()}
    assert ("LoginEtl", "DataKeyRefreshFailed") in alarms
    assert ("AWS/Lambda", "Throttles") in alarms
    assert ("AWS/Lambda", "Errors") in alarms
    assert ("AWS/SQS", "ApproximateAgeOfOldestMessage") in alarms
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in alarms


def test_the_dashboard_lists_every_alarm_and_can_be_switched_off() -> None:
    alarm_widget = next(w for w in dashboard_body(TEMPLATE)["widgets"] if w["type"] == "alarm")
    listed = {arn.removesuffix(".Arn") for arn in alarm_widget["properties"]["alarms"]}
    assert listed == set(alarm_metrics(TEMPLATE))
    assert RESOURCES["Dashboard"]["Condition"] == "DashboardOn"
    assert TEMPLATE["Conditions"]["DashboardOn"] == {
        "Fn::Equals": [{"Ref": "EnableDashboard"}, "true"]
    }
