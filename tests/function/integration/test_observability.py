"""What on-call engineers get: JSON logs with correlation ids, and EMF metrics per batch."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pg8000.native
import pytest
from aws_lambda_powertools.metrics.provider import cold_start

from login_etl.handler import lambda_handler
from login_etl.observability import NAMESPACE, SERVICE
from login_etl_cli.sample_data import generate_labelled
from login_etl_cli.seeding import send_bodies
from login_etl_local.event_source_mapping import LocalContext
from login_etl_local.provisioning import Provisioned
from tests.sqs_helpers import receive_event


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            lines.append(parsed)
    return lines


def test_logs_and_metrics_of_one_batch(
    queue: Provisioned,
    db: pg8000.native.Connection,
    capfd: pytest.CaptureFixture[str],
    function_logs: io.StringIO,
) -> None:
    labelled = generate_labelled(50, seed=31, malformed_ratio=0.1)
    send_bodies(boto3.client("sqs"), queue.queue_url, [body for body, _ in labelled])
    event = receive_event(queue, 50)
    bad = sum(not valid for _, valid in labelled)
    capfd.readouterr()
    cold_start.is_cold_start = True  # as in a new container

    response = lambda_handler(event, LocalContext())

    logs = json_lines(function_logs.getvalue())
    emf = [line for line in json_lines(capfd.readouterr().out) if "_aws" in line]
    failures = [line for line in logs if line["message"] == "message left on the queue"]
    failed_ids = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    assert len(failures) == bad == len(failed_ids)
    assert {line["correlation_id"] for line in failures} == failed_ids
    assert all(line["service"] == "login-etl" for line in logs)
    assert all("cold_start" in line and "function_request_id" in line for line in logs)
    summary = next(line for line in logs if line["message"] == "batch processed")
    assert (summary["received"], summary["written"], summary["failed"]) == (50, 50 - bad, bad)
    assert summary["prepare_ms"] >= 0
    assert summary["write_ms"] > 0

    metrics = {name: line[name] for line in emf for name in line if name[0].isupper()}
    assert metrics["MessagesReceived"] == [50.0]
    assert metrics["RowsWritten"] == [float(50 - bad)]
    assert metrics["DuplicatesSkipped"] == [0.0]
    assert metrics["MessagesFailed"] == [float(bad)]
    assert metrics["BatchLatency"][0] > 0
    assert metrics["ColdStart"] == [1.0]
    by_reason = [line for line in emf if "reason" in line]
    assert sum(line["MessagesFailedByReason"][0] for line in by_reason) == bad


def test_every_metric_carries_the_service_dimension(
    queue: Provisioned,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Also where POWERTOOLS_SERVICE_NAME is not set: the per-reason metric had it from there."""
    monkeypatch.delenv("POWERTOOLS_SERVICE_NAME", raising=False)
    labelled = generate_labelled(20, seed=32, malformed_ratio=0.3)
    send_bodies(boto3.client("sqs"), queue.queue_url, [body for body, _ in labelled])
    event = receive_event(queue, 20)
    capfd.readouterr()
    cold_start.is_cold_start = True

    lambda_handler(event, LocalContext())

    documents = [line for line in json_lines(capfd.readouterr().out) if "_aws" in line]
    by_reason = [d for d in documents if "MessagesFailedByReason" in d]
    assert by_reason  # the batch had failures: the per-reason documents are among these
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == NAMESPACE
            assert all("service" in dimensions for dimensions in directive["Dimensions"])
        assert document["service"] == SERVICE
