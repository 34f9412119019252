"""Powertools logger and metrics, shared by the handler and the drain loop.

The incoming event carries raw PII, so it is never logged (``log_event=False``); failures
are logged with the message id, a reason code and a detail that names fields, not values.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

if TYPE_CHECKING:  # annotations only: the drain and the prune are imported when they run
    from login_etl.config import Settings
    from login_etl.drain import DrainSummary
    from login_etl.ledger_pruning import LedgerWindow, PruneSummary
    from login_etl.pipeline import BatchOutcome

# Every metric carries the dimension service=SERVICE; the template's dashboard and alarms
# select the metrics by this namespace and that dimension (a test keeps them in step).
SERVICE = "login-etl"
NAMESPACE = "LoginEtl"

logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)


def report(outcome: BatchOutcome) -> None:
    """Log each failure and the batch summary; emit the counts as EMF metrics."""
    for failure in outcome.failures:
        logger.warning(
            "message left on the queue",
            extra={
                "correlation_id": failure.message_id,  # the SQS messageId
                "message_id": failure.message_id,
                "reason": failure.reason.value,
                "detail": failure.detail,
            },
        )
    logger.info(
        "batch processed",
        extra={
            "received": outcome.received,
            "written": outcome.written,
            "duplicates": outcome.duplicates,
            "failed": len(outcome.failures),
            "prepare_ms": round(outcome.prepare_ms, 1),
            "write_ms": round(outcome.write_ms, 1),
        },
    )
    # Powertools neither flushes nor clears disabled metrics, and prints them anyway once a
    # metric holds 100 values: when disabled, add none at all.
    if is_metrics_disabled():
        return
    metrics.add_metric(name="MessagesReceived", unit=MetricUnit.Count, value=outcome.received)
    metrics.add_metric(name="RowsWritten", unit=MetricUnit.Count, value=outcome.written)
    metrics.add_metric(name="DuplicatesSkipped", unit=MetricUnit.Count, value=outcome.duplicates)
    metrics.add_metric(name="MessagesFailed", unit=MetricUnit.Count, value=len(outcome.failures))
    latency = outcome.prepare_ms + outcome.write_ms
    metrics.add_metric(name="BatchLatency", unit=MetricUnit.Milliseconds, value=latency)
    # One EMF document per reason (a dimension applies to every metric of its document). The
    # service dimension is named here: single_metric takes it from POWERTOOLS_SERVICE_NAME only,
    # and without it the metric would be missing from every view by service (the dashboard's).
    for reason, count in Counter(f.reason.value for f in outcome.failures).items():
        with single_metric(
            name="MessagesFailedByReason",
            unit=MetricUnit.Count,
            value=count,
            namespace=metrics.namespace,
            default_dimensions={**metrics.default_dimensions, "service": SERVICE},
        ) as metric:
            metric.add_dimension(name="reason", value=reason)


def report_drain(summary: DrainSummary) -> None:
    """Log the drain's totals, and each message SQS failed to delete (it will come back)."""
    for failure in summary.delete_failures:
        logger.warning(
            "delete failed: the message will be redelivered and skipped as a duplicate",
            extra={
                "correlation_id": failure.message_id,
                "message_id": failure.message_id,
                "code": failure.code,
            },
        )
    logger.info("queue drained", extra=summary.as_response())
    if is_metrics_disabled():
        return
    metrics.add_metric(name="DrainBatches", unit=MetricUnit.Count, value=summary.batches)
    metrics.add_metric(
        name="DeleteFailures", unit=MetricUnit.Count, value=len(summary.delete_failures)
    )


def report_key_refresh_failure(held_key_id: int, code: str) -> None:
    """The data key could not be refreshed; the key already held is used meanwhile."""
    logger.warning(
        "data key refresh failed: masking with the key already held",
        extra={"held_key_id": f"{held_key_id:08x}", "error_code": code},
    )
    if is_metrics_disabled():
        return
    metrics.add_metric(name="DataKeyRefreshFailed", unit=MetricUnit.Count, value=1)


def report_prune(summary: PruneSummary) -> None:
    """Log and count one pruning run of the ledger."""
    logger.info("ledger pruned", extra=summary.as_response())
    if is_metrics_disabled():
        return
    metrics.add_metric(name="LedgerRowsPruned", unit=MetricUnit.Count, value=summary.deleted)


def report_ledger_window(window: LedgerWindow, settings: Settings) -> None:
    """Say when the ledger's window could not be checked against the queues, or when the
    settings were shorter than what the queues keep (the window follows the queues)."""
    settings_s = {
        "queueRetentionSetting": settings.queue_retention_s,
        "dlqRetentionSetting": settings.dlq_retention_s,
        "windowSeconds": window.seconds,
    }
    if window.queues_unread:
        logger.warning("ledger window from the settings only: queues unread", extra=settings_s)
    elif window.settings_below_queues:
        logger.warning(
            "QUEUE_RETENTION_SECONDS / DLQ_RETENTION_SECONDS are shorter than the queues keep"
            " messages: the ledger's window follows the queues",
            extra=settings_s,
        )
    else:
        return
    if is_metrics_disabled():
        return
    if window.queues_unread:
        metrics.add_metric(name="LedgerWindowUnchecked", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="LedgerWindowSettingsBelowQueues", unit=MetricUnit.Count, value=1)
