"""``login-etl unmask | keys | rekey``: recover, rotate and re-key PII, every step audited."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import boto3

from login_etl_tools.audit import AUDIT_TABLE, AuditRecord, caller_arn, key_ids_of, write_audit
from login_etl_tools.commands.common import (
    UserError,
    database,
    end_progress,
    key_store,
    show_progress,
)
from login_etl_tools.keys import DEFAULT_KMS_KEY
from login_etl_tools.rekey import rekey, stale_summary
from login_etl_tools.unmask import (
    MASKED_COLUMNS,
    parse_filters,
    select_rows,
    unmask_all,
    unmask_rows,
)


def register(commands: Any) -> None:
    """Add ``unmask``, ``keys`` and ``rekey`` to the subcommands."""
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


def _keys(args: argparse.Namespace) -> int:
    store = key_store(args.kms_key)
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
    filters = _filters(args.where) if args.where else None
    # Fail closed: no database, no audit record, nothing unmasked (whatever the source).
    with database(f"unmask records every call in {AUDIT_TABLE} first") as conn:
        keyring = key_store().keyring()
        identity = caller_arn(boto3.client("sts"))
        if filters is not None:
            rows = select_rows(conn, filters, args.limit)
            tokens = [row[column] for row in rows for column in MASKED_COLUMNS]
            source = "table"
        else:
            source = "stdin" if args.tokens == ["-"] else "args"
            tokens = sys.stdin.read().split() if source == "stdin" else args.tokens
        count = sum(token is not None for token in tokens)
        record = AuditRecord(
            identity, "unmask", source, count, args.reason, filters, key_ids_of(tokens)
        )
        write_audit(record, conn)  # committed: only now is anything decrypted
    if filters is not None:
        lines = unmask_rows(keyring, rows)
        failed = sum(1 for line in lines if "errors" in line)
    else:
        results = unmask_all(keyring, tokens)
        lines = [result.as_json() for result in results]
        failed = sum(1 for result in results if result.error is not None)
    for line in lines:
        print(json.dumps(line))
    if failed:
        print(f"login-etl: {failed} value(s) could not be unmasked (see 'error')", file=sys.stderr)
    return 1 if failed else 0


def _rekey(args: argparse.Namespace) -> int:
    keyring = key_store().keyring()
    identity = caller_arn(boto3.client("sts"))
    with database() as conn:
        stale, key_ids = stale_summary(conn, keyring)
        record = AuditRecord(identity, "rekey", "table", 2 * stale, args.reason, None, key_ids)
        write_audit(record, conn)
        progress = rekey(
            conn,
            keyring,
            batch_size=args.batch_size,
            stale=stale,
            on_batch=lambda p: show_progress(p.done, p.total, "rows"),
        )
    end_progress()
    current = keyring.current.key_id
    print(f"re-keyed {progress.done} rows in {progress.batches} batches to key {current:08x}")
    return 0


def _filters(specs: list[str]) -> dict[str, str]:
    try:
        return parse_filters(specs)
    except ValueError as error:
        raise UserError(str(error)) from None
