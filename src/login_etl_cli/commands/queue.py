"""``login-etl seed`` and ``login-etl dlq show | redrive``: what is on the queues."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

import boto3

from login_etl_cli.commands.arguments import (
    actions,
    add_command,
    add_message_source,
    ratio,
)
from login_etl_cli.commands.common import AWS, DLQ, QUEUE, key_store, queue_urls
from login_etl_cli.dead_letters import dlq_reasons, invalid_reason
from login_etl_cli.progress import Progress
from login_etl_cli.redrive import redrive
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
        "move the messages that pass validation back to the queue",
        "Each message is copied first and deleted from the DLQ after, so an interruption\n"
        "can duplicate a message but never lose one (the copies carry the original id,\n"
        "which the function's ledger keys on: nothing is written twice). Messages that\n"
        "fail validation stay in the DLQ (they would only come back): --all moves them too.",
    )
    move.add_argument(
        "--all",
        action="store_true",
        help="move the messages that fail validation too (after fixing the validation)",
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
    """Move the DLQ's messages back to the queue; the invalid ones only with --all."""
    queue_url, dlq_url = queue_urls(dlq=True)
    invalid: dict[str, str] = {}  # message id -> reason

    def valid(message: MessageTypeDef) -> bool:
        reason = invalid_reason(message["Body"])
        if reason is not None:
            invalid[message["MessageId"]] = reason
        return reason is None or args.all

    # Each copy's claim is signed with the data key: needs PiiRecoveryPolicy (kms:Decrypt).
    signer, verify = key_store().redrive_claims()
    with Progress("moved") as progress:
        moved = redrive(
            boto3.client("sqs"),
            dlq_url,
            queue_url,
            signer=signer,
            verify=verify,
            keep=valid,
            on_progress=progress.update,
        )
    print(f"moved {moved} message(s) back to {queue_url}")
    if invalid:
        reasons = Counter(invalid.values()).most_common()
        listed = "; ".join(f"{n} {reason}" for reason, n in reasons)
        if args.all:
            print(
                f"login-etl: warning: {len(invalid)} of them fail validation ({listed}): they"
                " will be dead-lettered again unless the validation was changed",
                file=sys.stderr,
            )
        else:
            print(
                f"left {len(invalid)} message(s) that fail validation in {dlq_url} ({listed}):"
                " redriven, they would only be dead-lettered again. Fix the producer;"
                " --all moves them anyway"
            )
    return 0
