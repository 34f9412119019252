"""``login-etl run``: deliver the queue to the real handler locally and summarise this run.

A reused stack holds what earlier runs left (rows, dead letters), so the summary is scoped:
rows are this run's when a transaction that began after the run started wrote them (their
``xmin`` is newer than an xid taken at the start), dead letters when their message id was not
in the DLQ at the start (SQS keeps a message's id when it moves it there). What was there
before is counted apart.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pg8000.native

from login_etl.adapters.postgres.schema import TABLE, table_exists
from login_etl_cli.dead_letters import peek_dead_letters
from login_etl_cli.invocation import MAX_FUNCTION_S
from login_etl_local.event_source_mapping import DeliveryStats, run_event_source_mapping
from login_etl_local.function_process import FunctionProcess
from login_etl_local.schedule import SCHEDULE_TIMEOUT_S, run_schedule

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class Before:
    """What the stack held when the run started."""

    rows: int
    xid: int  # a transaction id taken then: rows written after have a newer xmin
    dead_letters: frozenset[str]  # message ids in the DLQ


@dataclass
class RunSummary:
    """What a local run did, for the terminal."""

    sent: int
    delivery: DeliveryStats
    before: Before
    rows_after: int
    dead_letters: Counter[str] = field(default_factory=Counter)  # this run's, by reason
    dead_letters_before: int = 0  # of those there at the start, still there
    sample_rows: list[list[Any]] = field(default_factory=list)  # this run's

    @property
    def rows_written(self) -> int:
        return self.rows_after - self.before.rows


def take_before(
    conn: pg8000.native.Connection, sqs: SQSClient, dlq_url: str, *, fresh: bool
) -> Before:
    """The starting point; ``fresh``: a stack started for this run, with nothing in it yet."""
    xid = int(conn.run("SELECT pg_current_xact_id()::text")[0][0])  # its own committed xact
    dead = frozenset() if fresh else frozenset(peek_dead_letters(sqs, dlq_url))
    return Before(count_rows(conn), xid, dead)


def deliver(
    sqs: SQSClient,
    queue_url: str,
    *,
    batch_size: int,
    mode: str = "sqs",
    on_batch: Callable[[DeliveryStats], None] | None = None,
) -> DeliveryStats:
    """Deliver the queue to the function until it is empty.

    ``mode`` is the trigger: ``sqs`` emulates the event source mapping (batches of
    ``batch_size``), ``schedule`` the EventBridge rule (the function drains the queue itself).
    The function runs in a process of its own, with this process's environment as it is now,
    warm from one invocation to the next, and killed when the delivery ends, however it ends.
    """
    timeout_s = SCHEDULE_TIMEOUT_S if mode == "schedule" else MAX_FUNCTION_S
    # No time limit: the redrive policy empties any queue in the end, and Ctrl-C stops it.
    with FunctionProcess(timeout_s=timeout_s) as function:
        if mode == "schedule":
            return run_schedule(sqs, queue_url, function, on_batch=on_batch, max_seconds=math.inf)
        return run_event_source_mapping(
            sqs,
            queue_url,
            function,
            batch_size=batch_size,
            on_batch=on_batch,
            max_seconds=math.inf,
        )


def summarise(
    conn: pg8000.native.Connection,
    sqs: SQSClient,
    dlq_url: str,
    *,
    sent: int,
    stats: DeliveryStats,
    before: Before,
) -> RunSummary:
    """This run's rows and dead letters, and what was there before."""
    dead = peek_dead_letters(sqs, dlq_url)
    ours = Counter(
        reason for message_id, reason in dead.items() if message_id not in before.dead_letters
    )
    sample = []
    if table_exists(conn, TABLE):
        # age() counts back from the current xid modulo 2^32, so the comparison survives
        # wraparound; a frozen row's age is the maximum, never "newer".
        sample = conn.run(
            "SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version,"  # noqa: S608
            f" create_date FROM {TABLE} WHERE age(xmin) < age(CAST(:xid AS text)::xid)"
            " ORDER BY masked_device_id LIMIT 3",
            xid=str(before.xid % 2**32),
        )
    return RunSummary(
        sent,
        stats,
        before,
        count_rows(conn),
        ours,
        sum(1 for message_id in dead if message_id in before.dead_letters),
        sample,
    )


def count_rows(conn: pg8000.native.Connection) -> int:
    """Rows in user_logins; 0 if it does not exist yet."""
    if not table_exists(conn, TABLE):
        return 0
    return int(conn.run(f"SELECT count(*) FROM {TABLE}")[0][0])  # noqa: S608 - a constant
