"""``login-etl seed`` and ``login-etl dlq show | redrive``: what is on the queues."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import boto3

from login_etl_tools.commands.common import UserError, end_progress, key_store, queue_urls
from login_etl_tools.local_run import dlq_reasons
from login_etl_tools.redrive import redrive
from login_etl_tools.sample_data import generate
from login_etl_tools.seeding import bodies_from_file, send_bodies


def register(commands: Any) -> None:
    """Add ``seed`` and ``dlq`` to the subcommands."""
    seed = commands.add_parser("seed", help="send sample login messages to the queue")
    source = seed.add_mutually_exclusive_group()
    source.add_argument("--count", type=int, default=1000, help="generated messages to send")
    source.add_argument("--file", type=Path, help="send this JSON array / JSON-lines file instead")
    seed.add_argument("--seed", type=int, default=20221201, help="generator seed")
    seed.add_argument(
        "--malformed-ratio", type=float, default=0.02, help="share of malformed messages"
    )
    seed.set_defaults(command=seed_command)

    dlq = commands.add_parser("dlq", help="the dead-letter queue: show why, or redrive after a fix")
    dlq.add_argument("action", choices=("show", "redrive"))
    dlq.set_defaults(command=dlq_command)


def seed_command(args: argparse.Namespace) -> int:
    """Send generated (or file) messages."""
    queue_url, _ = queue_urls()
    if args.file:
        bodies = bodies_from_file(args.file)
    else:
        bodies = generate(args.count, args.seed, malformed_ratio=args.malformed_ratio)
    sent = send_bodies(boto3.client("sqs"), queue_url, bodies)
    print(f"sent {len(sent)} messages to {queue_url}")
    return 0


def dlq_command(args: argparse.Namespace) -> int:
    """Show the DLQ by reason (no values), or move its messages back to the queue."""
    queue_url, dlq_url = queue_urls()
    if not dlq_url:
        raise UserError("set DLQ_URL (the dead-letter queue's URL) or run `login-etl stack up`")
    sqs = boto3.client("sqs")
    if args.action == "show":
        count, reasons = dlq_reasons(sqs, dlq_url)
        print(f"{count} message(s) in {dlq_url}")
        for reason, n in reasons.most_common():
            print(f"  {n:>6}  {reason}")
        return 0
    # Each copy's claim is signed with the data key: needs PiiRecoveryPolicy (kms:Decrypt).
    signer, verify = key_store().redrive_claims()
    moved = redrive(sqs, dlq_url, queue_url, signer=signer, verify=verify, on_progress=_progress)
    end_progress()
    print(f"moved {moved} message(s) back to {queue_url}")
    return 0


def _progress(moved: int) -> None:
    if sys.stderr.isatty():
        print(f"\r  {moved} moved", end="", file=sys.stderr, flush=True)
