"""``login-etl run``: load a queue through the real handler locally and summarise this run."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from login_etl.domain.app_version import decode
from login_etl.domain.masking import token_key_id
from login_etl_cli.commands.arguments import add_command, add_message_source, int_between
from login_etl_cli.commands.common import UserError, database
from login_etl_cli.progress import Progress
from login_etl_cli.sample_data import generate
from login_etl_cli.seeding import send_bodies
from login_etl_cli.targets import (
    describe_aws,
    describe_database,
    find_target,
    refuse_unusable_stack,
)
from login_etl_local.event_source_mapping import DeliveryStats
from login_etl_local.extra import require_local_extra
from login_etl_local.local_run import RunSummary, deliver, summarise, take_before
from login_etl_local.provisioning import Provisioned, provision_here
from login_etl_local.stack import LOCAL_VISIBILITY_TIMEOUT_S, local_stack
from login_etl_local.stack_record import patched_environ, run_record_path

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

DESCRIPTION = """\
Which stack it uses, in this order:
  1. the one the environment names: AWS_ENDPOINT_URL (an emulator such as LocalStack)
     and DATABASE_URL, both set;
  2. the one 'login-etl stack up' left running in this project (.local-stack, found
     from any subdirectory);
  3. else, if no stack is recorded there at all, a throwaway stack (moto server +
     PostgreSQL) that it starts, and stops when it ends, however it ends (Ctrl-C and kill
     included). A recorded stack whose servers do not answer is refused, not replaced;
     --no-seed on a throwaway stack is refused too (it starts empty).
The summary counts this run's rows and dead letters, and what was there before apart."""


def register(commands: Any, summary: str) -> None:
    """Add ``run`` to the subcommands (``summary``: the one ``login-etl --help`` lists)."""
    run = add_command(commands, "run", summary, DESCRIPTION)
    source = add_message_source(run)
    source.add_argument("--no-seed", action="store_true", help="process what is queued already")
    run.add_argument(
        "--mode",
        choices=("sqs", "schedule"),
        default="sqs",
        help="the trigger: the SQS event source mapping, or the scheduled drain",
    )
    run.add_argument(
        "--batch-size",
        type=int_between(1, 10_000),
        default=100,
        help="records per invocation (the SQS event source maximum is 10,000)",
    )
    run.add_argument(
        "--max-receive-count",
        type=int_between(1, 1000),
        default=5,
        help="deliveries before a message is dead-lettered (a throwaway stack's redrive policy)",
    )
    run.add_argument(
        "--verbose", action="store_true", help="show the function's JSON logs (on stderr)"
    )
    run.set_defaults(command=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Send sample messages (unless --no-seed), deliver them to the function, summarise."""
    # For the function's process, which inherits this environment: metrics are off here, and
    # Powertools warns about every empty flush.
    logging_env = {"PYTHONWARNINGS": "ignore:No application metrics to publish"}
    if not args.verbose:
        logging_env |= {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}
    with (
        _stack(
            args.max_receive_count, LOCAL_VISIBILITY_TIMEOUT_S, seeding=not args.no_seed
        ) as stack,
        patched_environ(logging_env),
        database() as conn,  # before anything is sent: a wrong password stops it here
    ):
        sqs = boto3.client("sqs")
        before = take_before(conn, sqs, stack.provisioned.dlq_url, fresh=stack.fresh)
        sent = 0
        if not args.no_seed:
            bodies = args.file or generate(args.count, args.seed)
            sent = _send(sqs, stack.provisioned.queue_url, bodies)
            print(f"sent {sent} messages to {stack.provisioned.queue_url}")
        started = time.monotonic()
        waiting = _depth(sqs, stack.provisioned.queue_url)
        with Progress("settled", total=waiting) as progress:
            stats = deliver(
                sqs,
                stack.provisioned.queue_url,
                batch_size=args.batch_size,
                mode=args.mode,
                on_batch=_show(progress, sqs, stack.provisioned.queue_url, waiting),
            )
        summary = summarise(
            conn, sqs, stack.provisioned.dlq_url, sent=sent, stats=stats, before=before
        )
        _print_summary(summary, time.monotonic() - started)
    if stack.fresh:
        print("local stack stopped")
    return 0


@dataclass(frozen=True)
class RunStack:
    """The stack a run uses; ``fresh`` if the run started it (so it is empty)."""

    provisioned: Provisioned
    fresh: bool


@contextmanager
def _stack(
    max_receive_count: int, visibility_timeout_s: int, *, seeding: bool
) -> Iterator[RunStack]:
    """The environment's stack, else `stack up`'s, else a throwaway one started here.

    A stack `stack up` recorded whose servers are down is refused as the other commands
    refuse it: a throwaway stack in its place ran on an empty queue and said nothing.
    ``seeding``: False (``--no-seed``) has nothing to process on a throwaway stack.
    """
    target = find_target()
    if target is not None and target.local is None:
        missing = [v for v in ("AWS_ENDPOINT_URL", "DATABASE_URL") if not os.environ.get(v)]
        if missing:
            raise UserError(
                f"run loads into a local or emulated stack: {' and '.join(missing)} not set."
                " Set both AWS_ENDPOINT_URL and DATABASE_URL (LocalStack, your Postgres), or"
                " unset the others to use 'login-etl stack up's stack or a throwaway one"
            )
        _say_target(target.origin)
        yield RunStack(
            provision_here(
                max_receive_count=max_receive_count, visibility_timeout_s=visibility_timeout_s
            ),
            fresh=False,
        )
        return
    if target is not None and target.local is not None:
        with target.applied():
            _say_target(target.origin)
            yield RunStack(target.local.provisioned, fresh=False)
        return
    refuse_unusable_stack()
    if not seeding:
        raise UserError(
            "--no-seed: no stack is running here, and a throwaway one starts empty, so there"
            " would be nothing to process. Start one (`login-etl stack up`, `login-etl seed`),"
            " name yours in the environment, or drop --no-seed"
        )
    require_local_extra()
    print("starting a throwaway local stack (moto server + PostgreSQL) ...", flush=True)
    with (
        local_stack(max_receive_count, visibility_timeout_s, record=run_record_path()) as stack,
        patched_environ(stack.environment()),
    ):
        _say_target("a throwaway stack, stopped when this run ends")
        yield RunStack(stack.provisioned, fresh=True)


def _say_target(origin: str) -> None:
    print(f"using {describe_aws()} and {describe_database()}: {origin}", flush=True)


def _send(sqs: SQSClient, queue_url: str, bodies: list[str]) -> int:
    with Progress("sent", total=len(bodies)) as progress:
        return len(send_bodies(sqs, queue_url, bodies, on_progress=progress.update))


def _depth(sqs: SQSClient, queue_url: str) -> int:
    """Messages on the queue: visible, in flight and delayed."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )
    return sum(int(value) for value in attributes["Attributes"].values())


def _show(
    progress: Progress, sqs: SQSClient, queue_url: str, total: int
) -> Callable[[DeliveryStats], None]:
    """Progress from the queue's depth: settled = written, or dead-lettered, or gone."""
    last = 0.0

    def show(stats: DeliveryStats) -> None:
        nonlocal last
        if time.monotonic() - last < 0.5:  # one GetQueueAttributes per half second at most
            return
        last = time.monotonic()
        left = _depth(sqs, queue_url)
        progress.update(max(0, total - left), total=max(total, left), note=failing_note(stats))

    return show


def failing_note(stats: DeliveryStats) -> str:
    """The progress line's note: the messages failing now, not the whole queue left."""
    return f"{stats.failing} failing, being retried" if stats.failing else ""


def _version(value: int | None) -> str:
    return "NULL" if value is None else decode(value)


def _print_summary(summary: RunSummary, seconds: float) -> None:
    d = summary.delivery
    before = summary.before
    lines = [
        ("messages sent", summary.sent),
        ("deliveries to the handler", d.delivered),
        ("handler invocations", d.invocations),
        ("failed invocations (whole batch retried)", d.failed_invocations),
        ("messages reported failed (retried)", d.reported_failures),
        ("rows written to user_logins", summary.rows_written),
        ("messages dead-lettered", sum(summary.dead_letters.values())),
    ]
    print(f"\nthis run ({seconds:.1f} s)")
    for label, value in lines:
        print(f"  {label:<42} {value:>8}")
    if before.rows or before.dead_letters:
        print("\nthere before this run")
        print(f"  {'rows in user_logins':<42} {before.rows:>8}")
        print(f"  {'messages in the dead-letter queue':<42} {summary.dead_letters_before:>8}")
    if summary.dead_letters:
        print("\ndead-lettered by this run, and why (re-validated, no values shown)")
        for reason, count in summary.dead_letters.most_common():
            print(f"  {count:>6}  {reason}")
    if summary.sample_rows:
        print(
            "\na few rows of this run (masked_ip / masked_device_id: deterministic Fernet tokens)"
        )
        for row in summary.sample_rows:
            user_id, device_type, masked_ip, masked_device, locale, version, day = row
            shown = f"{device_type:<8} {locale or 'NULL':<5} {_version(version):>11}"
            print(f"  {user_id}  {shown}  {day}")
            print(f"    masked_ip        {masked_ip}")
            print(
                f"    masked_device_id {masked_device}  (key id {token_key_id(masked_device):08x})"
            )
