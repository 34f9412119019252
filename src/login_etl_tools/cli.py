"""``login-etl``: the command line for running and inspecting the pipeline locally.

``login-etl run`` starts a local stack (moto server + throwaway Postgres) unless
``AWS_ENDPOINT_URL`` and ``DATABASE_URL`` point at one already, sends sample messages, delivers
them to the real Lambda handler the way the SQS event source mapping does, and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import boto3
import pg8000.native

from login_etl.adapters.postgres_store import connect
from login_etl.config import DEFAULT_KEYRING_PATH, Settings, connection_params_from_url
from login_etl.domain.masking import token_key_id
from login_etl_tools.audit import AuditRecord, caller_arn, write_audit
from login_etl_tools.event_source_mapping import DeliveryStats
from login_etl_tools.keys import DEFAULT_KMS_KEY, KeyStore
from login_etl_tools.local_run import RunSummary, deliver_and_summarise
from login_etl_tools.provisioning import DATA_KEY_PARAMETER, Provisioned, provision
from login_etl_tools.rekey import RekeyProgress, count_stale, rekey
from login_etl_tools.sample_data import generate
from login_etl_tools.seeding import bodies_from_file, send_bodies
from login_etl_tools.stack import local_stack, patched_environ
from login_etl_tools.unmask import parse_filters, select_rows, unmask_all, unmask_rows

# Local shortcut: failed messages come back after 5 s, not after 6 x the function timeout.
# Not less: a drained round must be deleted before its messages become visible again.
LOCAL_SCHEDULE_VISIBILITY_S = 5


class UserError(Exception):
    """A problem the user can fix; printed as one line, no traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``login-etl`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.command(args))
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if args.debug:
            raise
        print(f"login-etl: {_explain(error)}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="login-etl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
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
    run.set_defaults(command=_run)

    unmask = commands.add_parser(
        "unmask",
        help="recover masked values (needs kms:Decrypt on the key; every call is audited)",
        description="Tokens from the arguments, stdin (-), or the table (--where). One JSON line"
        " per value; exit 1 if any value could not be recovered.",
    )
    unmask.add_argument("tokens", nargs="*", help="masked values; '-' reads them from stdin")
    unmask.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COLUMN=VALUE",
        help="unmask the rows of user_logins that match (repeatable, ANDed)",
    )
    unmask.add_argument("--limit", type=int, default=100, help="at most this many rows")
    unmask.add_argument("--reason", help="why (a ticket number): kept in the audit record")
    unmask.set_defaults(command=_unmask)

    keys = commands.add_parser("keys", help="the Fernet data keys: init, rotate, list")
    keys.add_argument("action", choices=("init", "rotate", "list"))
    keys.add_argument(
        "--kms-key", default=DEFAULT_KMS_KEY, help="KMS key that wraps new data keys (init, rotate)"
    )
    keys.set_defaults(command=_keys)

    rekey_ = commands.add_parser(
        "rekey", help="re-encrypt existing rows under the current key (resumable, audited)"
    )
    rekey_.add_argument("--batch-size", type=int, default=1000, help="rows per transaction")
    rekey_.add_argument("--reason", help="kept in the audit record")
    rekey_.set_defaults(command=_rekey)
    return parser


def _run(args: argparse.Namespace) -> int:
    if not 1 <= args.batch_size <= 10_000:
        raise UserError("--batch-size must be between 1 and 10000 (the SQS event source maximum)")
    logging_env = (
        {}
        if args.verbose
        else {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}
    )
    # The scheduled drain leaves failures to the queue's visibility timeout: keep it short here.
    visibility_s = LOCAL_SCHEDULE_VISIBILITY_S if args.mode == "schedule" else 30
    with (
        _stack(args.max_receive_count, visibility_s) as provisioned,
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


def _key_store(kms_key: str = DEFAULT_KMS_KEY) -> KeyStore:
    return KeyStore(
        boto3.client("ssm"),
        boto3.client("kms"),
        current_parameter=os.environ.get("DATA_KEY_PARAMETER") or DATA_KEY_PARAMETER,
        keyring_path=os.environ.get("DATA_KEYRING_PATH") or DEFAULT_KEYRING_PATH,
        kms_key=kms_key,
    )


def _keys(args: argparse.Namespace) -> int:
    store = _key_store(args.kms_key)
    if args.action == "init":
        key_id, created = store.init()
        print(f"{'created' if created else 'already there:'} data key {key_id:08x} (current)")
    elif args.action == "rotate":
        previous, new = store.rotate()
        print(f"data key {new:08x} is current; {previous:08x} and older still unmask")
        print("run `login-etl rekey` once every function container uses the new key")
    else:
        for key in store.list():
            print(f"{key.key_id:08x}  {key.created}  {'current' if key.current else ''}")
    return 0


def _unmask(args: argparse.Namespace) -> int:
    if args.tokens and args.where:
        raise UserError("give tokens or --where filters, not both")
    if not args.tokens and not args.where:
        raise UserError("give tokens, '-' to read them from stdin, or --where column=value")
    keyring = _key_store().keyring()
    identity = caller_arn(boto3.client("sts"))
    if args.where:
        filters = _filters(args.where)
        with _database() as conn:
            rows = select_rows(conn, filters, args.limit)
            audit = AuditRecord(identity, "unmask", "table", 2 * len(rows), args.reason, filters)
            write_audit(audit, conn)
        lines = unmask_rows(keyring, rows)
        failed = sum(1 for line in lines if "errors" in line)
    else:
        source = "stdin" if args.tokens == ["-"] else "args"
        tokens = sys.stdin.read().split() if source == "stdin" else args.tokens
        write_audit(AuditRecord(identity, "unmask", source, len(tokens), args.reason), None)
        results = unmask_all(keyring, tokens)
        lines = [result.as_json() for result in results]
        failed = sum(1 for result in results if result.error is not None)
    for line in lines:
        print(json.dumps(line))
    if failed:
        print(f"login-etl: {failed} value(s) could not be unmasked (see 'error')", file=sys.stderr)
    return 1 if failed else 0


def _rekey(args: argparse.Namespace) -> int:
    keyring = _key_store().keyring()
    identity = caller_arn(boto3.client("sts"))
    with _database() as conn:
        stale = count_stale(conn, keyring)
        write_audit(AuditRecord(identity, "rekey", "table", 2 * stale, args.reason), conn)
        progress = rekey(conn, keyring, batch_size=args.batch_size, on_batch=_rekey_progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    current = keyring.current.key_id
    print(f"re-keyed {progress.done} rows in {progress.batches} batches to key {current:08x}")
    return 0


def _rekey_progress(progress: RekeyProgress) -> None:
    if sys.stderr.isatty() and progress.total:
        done = min(progress.done, progress.total)
        bar = "#" * (30 * done // progress.total)
        print(f"\r  [{bar:<30}] {done}/{progress.total} rows", end="", file=sys.stderr, flush=True)


def _filters(specs: list[str]) -> dict[str, str]:
    try:
        return parse_filters(specs)
    except ValueError as error:
        raise UserError(str(error)) from None


@contextmanager
def _database() -> Iterator[pg8000.native.Connection]:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise UserError("set DATABASE_URL (postgresql://user:password@host:5432/database)")
    # Only the connection settings matter here; the data key's are not needed to connect.
    settings = Settings.from_env({**os.environ, "DATA_KEY_PARAMETER": DATA_KEY_PARAMETER})
    conn = connect(connection_params_from_url(url, settings))
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def _stack(max_receive_count: int, visibility_timeout_s: int) -> Iterator[Provisioned]:
    """The user's stack if the environment names one, else a local one started here."""
    if os.environ.get("AWS_ENDPOINT_URL") and os.environ.get("DATABASE_URL"):
        print(
            f"using AWS at {os.environ['AWS_ENDPOINT_URL']} and DATABASE_URL from the environment"
        )
        yield provision(
            boto3.client("sqs"),
            boto3.client("kms"),
            boto3.client("ssm"),
            max_receive_count=max_receive_count,
            visibility_timeout_s=visibility_timeout_s,
        )
        return
    print("starting the local stack (moto server + throwaway PostgreSQL) ...")
    with (
        local_stack(max_receive_count, visibility_timeout_s) as stack,
        patched_environ(stack.environment()),
    ):
        print(f"  AWS endpoint {stack.aws_endpoint_url}, Postgres {_redact(stack.database_url)}")
        yield stack.provisioned
    print("local stack stopped")


def _progress(total: int) -> Callable[[DeliveryStats], None]:
    interactive = sys.stderr.isatty()

    def show(stats: DeliveryStats) -> None:
        if interactive and total:
            done = min(stats.deleted, total)
            bar = "#" * (30 * done // total)
            print(
                f"\r  [{bar:<30}] {done}/{total} done, {stats.reported_failures} retries",
                end="",
                file=sys.stderr,
                flush=True,
            )

    return show


def _print_summary(summary: RunSummary, seconds: float) -> None:
    if sys.stderr.isatty():
        print(file=sys.stderr)
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


def _redact(url: str) -> str:
    scheme, _, rest = url.partition("://")
    credentials, _, host = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0]}:***@{host}" if credentials else url


def _explain(error: Exception) -> str:
    """One line: what is wrong and what to do."""
    import botocore.exceptions  # noqa: PLC0415

    if isinstance(error, UserError | LookupError):
        return str(error).strip("'\"")
    if isinstance(error, botocore.exceptions.NoRegionError):
        return "no AWS region: set AWS_REGION (e.g. export AWS_REGION=us-east-1)"
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
    if isinstance(error, botocore.exceptions.EndpointConnectionError):
        return f"cannot reach AWS at {error.kwargs.get('endpoint_url')}: is the stack running?"
    if isinstance(error, OSError) and "DATABASE_URL" in os.environ:
        return f"cannot reach Postgres at {_redact(os.environ['DATABASE_URL'])}: {error}"
    return f"{type(error).__name__}: {error} (rerun with --debug for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
