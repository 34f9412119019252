"""``login-etl seed`` and ``login-etl dlq show | redrive``: what is on the queues."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

import boto3

from login_etl_cli.commands.arguments import (
    actions,
    add_command,
    add_message_source,
    int_between,
    ratio,
)
from login_etl_cli.commands.common import AWS, DLQ, QUEUE, UserError, queue_urls
from login_etl_cli.dead_letters import dlq_reasons, invalid_reason
from login_etl_cli.invocation import Function, LambdaFunction, local_function
from login_etl_cli.progress import Progress
from login_etl_cli.redrive import MAX_EVENT_BYTES, FunctionFailedError, RedriveSummary, redrive
from login_etl_cli.sample_data import generate
from login_etl_cli.seeding import send_bodies

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef


def register(commands: Any) -> None:
    """Add ``seed`` and ``dlq`` to the subcommands."""
    seed = add_command(
        commands,
        "seed",
        "send sample login messages to the queue (QUEUE_URL)",
        "Generated messages repeat devices and IPs, and include malformed ones; the same\n"
        "--seed gives the same messages.",
    )
    add_message_source(seed)
    seed.add_argument(
        "--malformed-ratio",
        type=ratio,
        default=0.02,
        help="share of malformed messages, 0 to 1",
    )
    seed.set_defaults(command=seed_command, needs=(QUEUE, AWS))

    dlq = add_command(
        commands,
        "dlq",
        "the dead-letter queue (DLQ_URL): show why, or redrive after a fix",
    )
    action = actions(dlq)
    show = add_command(
        action,
        "show",
        "count the dead-lettered messages by why they fail validation today",
        "Reasons only, never a value. 'valid now' means the message failed for another\n"
        "reason (an outage): those are the ones to redrive once it is fixed.",
    )
    show.set_defaults(command=dlq_show, needs=(DLQ, AWS))
    move = add_command(
        action,
        "redrive",
        "hand the messages that pass validation to the function, after a fix",
        "The function itself takes them, as Lambda's event source mapping would deliver\n"
        "them from the queue: each under its own message id, with its SentTimestamp. Its\n"
        "ledger recognises any already written (nothing is written twice), and each row is\n"
        "dated by the login, not by the redrive. A message is deleted from the DLQ only\n"
        "once the function answered that it is written; those it reports failed stay. An\n"
        "interruption loses nothing: run it again (held messages come back after --hold).\n"
        "The function: FUNCTION_NAME or --function (Lambda Invoke, RequestResponse); with\n"
        "neither, against an emulator (AWS_ENDPOINT_URL, or the local stack), the function\n"
        "run here, as 'login-etl run' runs it. Messages that fail validation stay in the\n"
        "DLQ (they would only fail again): --all hands them over too.",
    )
    move.add_argument(
        "--all",
        action="store_true",
        help="hand over the messages that fail validation here too (the deployed function may"
        " validate differently); those it still refuses stay in the DLQ",
    )
    move.add_argument(
        "--function",
        metavar="NAME",
        help="the deployed function's name or ARN (default: FUNCTION_NAME)",
    )
    move.add_argument(
        "--batch-size",
        type=int_between(1, 10_000),
        default=1000,
        help=f"messages per invocation (and at most {MAX_EVENT_BYTES:,} bytes of event)",
    )
    move.add_argument(
        "--hold",
        type=int_between(10, 43_200),
        default=300,
        metavar="SECONDS",
        help="how long the messages being handed over stay invisible in the DLQ (after an"
        " interruption, they come back then); longer than an invocation takes",
    )
    move.set_defaults(command=dlq_redrive, needs=(DLQ, AWS))


def seed_command(args: argparse.Namespace) -> int:
    """Send generated (or file) messages."""
    queue_url, _ = queue_urls()
    bodies = args.file or generate(args.count, args.seed, malformed_ratio=args.malformed_ratio)
    with Progress("sent", total=len(bodies)) as progress:
        sent = send_bodies(boto3.client("sqs"), queue_url, bodies, on_progress=progress.update)
    print(f"sent {len(sent)} messages to {queue_url}")
    return 0


def dlq_show(args: argparse.Namespace) -> int:  # noqa: ARG001 - no options
    """The DLQ by reason (no values)."""
    _, dlq_url = queue_urls(dlq=True)
    with Progress("read"):
        count, reasons = dlq_reasons(boto3.client("sqs"), dlq_url)
    print(f"{count} message(s) in {dlq_url}")
    for reason, n in reasons.most_common():
        print(f"  {n:>6}  {reason}")
    return 0


def dlq_redrive(args: argparse.Namespace) -> int:
    """Hand the DLQ's messages to the function; the invalid ones only with --all."""
    queue_url, dlq_url = queue_urls(dlq=True)
    invalid: dict[str, str] = {}  # message id -> reason

    def valid(message: MessageTypeDef) -> bool:
        reason = invalid_reason(message["Body"])
        if reason is not None:
            invalid[message["MessageId"]] = reason
        return reason is None or args.all

    sqs = boto3.client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    function, described = _function(args.function)
    summary = RedriveSummary()
    try:
        with function, Progress("handed over") as progress:
            redrive(
                sqs,
                dlq_url,
                queue_arn,
                function,
                batch_size=args.batch_size,
                hold_s=args.hold,
                keep=valid,
                summary=summary,
                on_progress=lambda done: progress.update(done.handed),
            )
    except FunctionFailedError as error:
        raise UserError(str(error)) from None
    finally:
        _say_what_was_done(summary, dlq_url, described)
    held = int(
        sqs.get_queue_attributes(
            QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]["ApproximateNumberOfMessagesNotVisible"]
    )
    if held:
        print(
            f"{held} message(s) of the DLQ are held by another reader (an interrupted redrive,"
            " say) and were not handed over: run this again once they are visible (--hold"
            " of that run)"
        )
    if invalid:
        reasons = Counter(invalid.values()).most_common()
        listed = "; ".join(f"{n} {reason}" for reason, n in reasons)
        if args.all:
            print(
                f"login-etl: warning: {len(invalid)} of them fail validation ({listed}): the"
                " function reports them failed, and they stay in the DLQ, unless it validates"
                " differently",
                file=sys.stderr,
            )
        else:
            print(
                f"left {len(invalid)} message(s) that fail validation in {dlq_url} ({listed}):"
                " handed over, they would only fail again. Fix the producer; --all hands them"
                " over anyway"
            )
    return 0


def _function(name: str | None) -> tuple[Function, str]:
    """The function to hand the dead letters to, and how to name it."""
    name = name or os.environ.get("FUNCTION_NAME")
    if name:
        return LambdaFunction(name), f"Lambda function {name}"
    if os.environ.get("AWS_ENDPOINT_URL"):  # an emulator, with no function deployed in it
        return local_function(), "the function run here (as login-etl run runs it)"
    raise UserError(
        "which function? Set FUNCTION_NAME (or --function) to the deployed function's name or"
        " ARN: the stack's FunctionArn output"
    )


def _say_what_was_done(summary: RedriveSummary, dlq_url: str, function: str) -> None:
    """What the redrive did, even when it stopped half-way: every message is accounted for."""
    print(
        f"handed {summary.handed} message(s) of {dlq_url} to {function}"
        f" in {summary.invocations} invocation(s): {summary.deleted} deleted from the DLQ"
        f" (written, or found written already), {summary.failed} reported failed (left in"
        " the DLQ)"
    )
    if summary.too_large:
        print(
            f"left {summary.too_large} message(s) in the DLQ that alone exceed an invocation's"
            f" {MAX_EVENT_BYTES:,} bytes"
        )
    if summary.undeleted:
        print(
            f"left {summary.undeleted} message(s) in the DLQ that SQS did not delete: the"
            " function acknowledged them, so a later redrive finds them written"
        )
