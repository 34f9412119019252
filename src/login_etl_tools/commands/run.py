"""``login-etl run``: load a queue through the real handler locally and summarise it."""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from login_etl.domain.masking import token_key_id
from login_etl_tools.commands.common import (
    UserError,
    end_progress,
    redact,
    show_progress,
    uses_environment,
)
from login_etl_tools.event_source_mapping import DeliveryStats
from login_etl_tools.local_run import RunSummary, deliver_and_summarise
from login_etl_tools.provisioning import Provisioned, provision_here
from login_etl_tools.sample_data import generate
from login_etl_tools.seeding import bodies_from_file, send_bodies
from login_etl_tools.stack import LOCAL_VISIBILITY_TIMEOUT_S, local_stack, patched_environ
from login_etl_tools.stack_state import read_state


def register(commands: Any) -> None:
    """Add ``run`` to the subcommands."""
    run = commands.add_parser("run", help="load a queue of login messages into Postgres locally")
    source = run.add_mutually_exclusive_group()
    source.add_argument("--count", type=int, default=1000, help="generated messages to send")
    source.add_argument("--file", type=Path, help="send this JSON array / JSON-lines file instead")
    source.add_argument("--no-seed", action="store_true", help="process what is queued already")
    run.add_argument("--seed", type=int, default=20221201, help="generator seed")
    run.add_argument(
        "--mode",
        choices=("sqs", "schedule"),
        default="sqs",
        help="the trigger: the SQS event source mapping, or the scheduled drain",
    )
    run.add_argument("--batch-size", type=int, default=100, help="records per invocation (1-10000)")
    run.add_argument("--max-receive-count", type=int, default=5, help="redrive maxReceiveCount")
    run.add_argument("--verbose", action="store_true", help="show the function's JSON logs")
    run.set_defaults(command=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Send sample messages (unless --no-seed), deliver them to the handler, summarise."""
    # Metrics are off here, and Powertools warns about every empty flush.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    if not 1 <= args.batch_size <= 10_000:
        raise UserError("--batch-size must be between 1 and 10000 (the SQS event source maximum)")
    logging_env = (
        {}
        if args.verbose
        else {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}
    )
    with (
        _stack(args.max_receive_count, LOCAL_VISIBILITY_TIMEOUT_S) as provisioned,
        patched_environ(logging_env),
    ):
        sqs = boto3.client("sqs")
        if args.no_seed:
            sent = 0
        else:
            bodies = bodies_from_file(args.file) if args.file else generate(args.count, args.seed)
            sent = len(send_bodies(sqs, provisioned.queue_url, bodies))
            print(f"sent {sent} messages to {provisioned.queue_url}")
        started = time.monotonic()
        summary = deliver_and_summarise(
            sqs,
            provisioned.queue_url,
            provisioned.dlq_url,
            sent,
            batch_size=args.batch_size,
            mode=args.mode,
            on_batch=_progress(sent),
        )
        _print_summary(summary, time.monotonic() - started)
    return 0


@contextmanager
def _stack(max_receive_count: int, visibility_timeout_s: int) -> Iterator[Provisioned]:
    """The environment's stack, else `stack up`'s, else a throwaway one started here."""
    if uses_environment():
        print(f"using AWS at {os.environ.get('AWS_ENDPOINT_URL', '(default)')} and DATABASE_URL")
        yield provision_here(
            max_receive_count=max_receive_count,
            visibility_timeout_s=visibility_timeout_s,
        )
        return
    state = read_state()
    if state is not None and all(state.is_up()):
        running = state.stack()
        print(f"using the stack from `login-etl stack up` ({running.aws_endpoint_url})")
        with patched_environ(running.environment()):
            yield running.provisioned
        return
    print("starting the local stack (moto server + throwaway PostgreSQL) ...")
    with (
        local_stack(max_receive_count, visibility_timeout_s) as stack,
        patched_environ(stack.environment()),
    ):
        print(f"  AWS endpoint {stack.aws_endpoint_url}, Postgres {redact(stack.database_url)}")
        yield stack.provisioned
    print("local stack stopped")


def _progress(total: int) -> Callable[[DeliveryStats], None]:
    def show(stats: DeliveryStats) -> None:
        show_progress(stats.deleted, total, f"done, {stats.reported_failures} retries")

    return show


def _print_summary(summary: RunSummary, seconds: float) -> None:
    end_progress()
    d = summary.delivery
    written = summary.rows_after - summary.rows_before
    lines = [
        ("messages sent", summary.sent),
        ("deliveries to the handler", d.delivered),
        ("handler invocations", d.invocations),
        ("failed invocations (whole batch retried)", d.failed_invocations),
        ("rows written to user_logins", written),
        ("rows in user_logins now", summary.rows_after),
        ("messages reported failed (retried)", d.reported_failures),
        ("messages in the dead-letter queue", summary.dlq_messages),
    ]
    print(f"\nsummary ({seconds:.1f} s)")
    for label, value in lines:
        print(f"  {label:<42} {value:>8}")
    if summary.dlq_reasons:
        print("\ndead-lettered, and why (re-validated, no values shown)")
        for reason, count in summary.dlq_reasons.most_common():
            print(f"  {count:>6}  {reason}")
    if summary.sample_rows:
        print("\na few rows (masked_ip / masked_device_id are deterministic Fernet tokens)")
        for row in summary.sample_rows:
            user_id, device_type, masked_ip, masked_device, locale, version, day = row
            print(f"  {user_id}  {device_type:<8} {locale or 'NULL':<5} {version:>9}  {day}")
            print(f"    masked_ip        {masked_ip}")
            print(
                f"    masked_device_id {masked_device}  (key id {token_key_id(masked_device):#x})"
            )
