"""``login-etl unmask | keys | rekey``: recover, rotate and re-key PII, every step audited."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import boto3
import pg8000.native

from login_etl.adapters.postgres.schema import TABLE, table_exists
from login_etl_cli.audit import AUDIT_TABLE, AuditRecord, caller_arn, key_ids_of, write_audit
from login_etl_cli.commands.arguments import actions, add_command, int_between
from login_etl_cli.commands.common import AWS, POSTGRES, UserError, database, key_store
from login_etl_cli.keys import DEFAULT_KMS_KEY
from login_etl_cli.progress import Progress
from login_etl_cli.rekey import rekey, stale_summary
from login_etl_cli.unmask import (
    MASKED_COLUMNS,
    parse_filter,
    select_rows,
    unmask_all,
    unmask_rows,
)

NO_ROWS_MATCHED = 3  # unmask --where: nothing to unmask (1: a value could not be recovered)


def register(commands: Any) -> None:
    """Add ``unmask``, ``keys`` and ``rekey`` to the subcommands."""
    unmask = add_command(
        commands,
        "unmask",
        "recover masked values (needs kms:Decrypt on the key; every call is audited)",
        "Tokens from the arguments, from stdin ('-'), or from the table (--where). One JSON\n"
        "line per value (per row with --where, app_version dotted as report shows it).\n"
        f"Exit 1 if any value could not be recovered, {NO_ROWS_MATCHED} if --where matched no"
        " row. Every\n"
        f"call is first recorded in {AUDIT_TABLE} (committed before anything is\n"
        "decrypted), with its --reason, which is required.",
    )
    unmask.add_argument("tokens", nargs="*", help="masked values; '-' reads them from stdin")
    unmask.add_argument(
        "--where",
        action="append",
        type=where_filter,
        default=[],
        metavar="COLUMN=VALUE",
        help="unmask the rows of user_logins that match (repeatable, ANDed; app_version as 2.3.0)",
    )
    unmask.add_argument(
        "--limit", type=int_between(1), default=100, help="at most this many rows (--where)"
    )
    unmask.add_argument(
        "--reason",
        required=True,
        type=reason_text,
        help="why: the ticket or request id that asks for it; kept in the audit record",
    )
    unmask.set_defaults(
        command=_unmask,
        check=_check_unmask,
        needs=(POSTGRES, AWS),
        database_why=f"unmask records every call in {AUDIT_TABLE} first",
    )

    keys = add_command(
        commands,
        "keys",
        "the Fernet data keys in SSM: init, rotate, list",
        "The current key is DATA_KEY_PARAMETER; every key ever made stays in\n"
        "DATA_KEYRING_PATH, so that tokens of any age can be unmasked.",
    )
    action = actions(keys)
    for name, summary, description in (
        ("init", "create the first data key (nothing if there is one)", ""),
        (
            "rotate",
            "make a new data key current; the old ones still unmask",
            "Run 'login-etl rekey' once every function container uses the new key\n"
            "(DATA_KEY_MAX_AGE_SECONDS after the rotation).",
        ),
        ("list", "list the data keys: id, date, which is current", ""),
    ):
        parser = add_command(action, name, summary, description)
        if name != "list":
            parser.add_argument(
                "--kms-key", default=DEFAULT_KMS_KEY, help="the KMS key that wraps new data keys"
            )
        parser.set_defaults(command=_keys, action=name, needs=(AWS,))

    rekey_ = add_command(
        commands,
        "rekey",
        "re-encrypt existing rows under the current key (resumable, audited)",
        "Rows whose tokens were made by an older key get the current key's tokens, so that\n"
        "duplicates compare across the whole table again. Interrupted, it continues where\n"
        "it stopped when run again.",
    )
    rekey_.add_argument(
        "--batch-size", type=int_between(1, 100_000), default=1000, help="rows per transaction"
    )
    rekey_.add_argument("--reason", help="kept in the audit record")
    rekey_.set_defaults(command=_rekey, needs=(POSTGRES, AWS))


def reason_text(text: str) -> str:
    """A ``--reason`` that says something: the audit record is worth what it says."""
    reason = text.strip()
    if not reason:
        raise argparse.ArgumentTypeError(
            "say why: a ticket or request id (kept in the audit record), not an empty string"
        )
    return reason


def _keys(args: argparse.Namespace) -> int:
    store = key_store(getattr(args, "kms_key", DEFAULT_KMS_KEY))
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


def _check_unmask(args: argparse.Namespace) -> None:
    """The tokens or filters, checked (and stdin read) before the target is even looked at."""
    if args.tokens and args.where:
        raise UserError("give tokens or --where filters, not both")
    if not args.tokens and not args.where:
        raise UserError("give tokens, '-' to read them from stdin, or --where column=value")
    args.filters = dict(args.where) if args.where else None
    args.source = "table" if args.where else "stdin" if args.tokens == ["-"] else "args"
    if args.source == "stdin":
        args.tokens = sys.stdin.read().split()
        if not args.tokens:  # an empty pipe: the command before it most likely failed
            raise UserError(
                "no tokens on stdin: nothing to unmask (did the command before the pipe fail?)"
            )


def _unmask(args: argparse.Namespace) -> int:
    filters, source = args.filters, args.source
    tokens: list[str | None] = [] if filters is not None else list(args.tokens)
    # Fail closed: no database, no audit record, nothing unmasked (whatever the source).
    with database(f"unmask records every call in {AUDIT_TABLE} first") as conn:
        keyring = key_store().keyring()
        identity = caller_arn(boto3.client("sts"))
        if filters is not None:
            rows = select_rows(conn, filters, args.limit)
            tokens = [row[column] for row in rows for column in MASKED_COLUMNS]
        count = sum(token is not None for token in tokens)
        record = AuditRecord(
            identity, "unmask", source, count, args.reason, filters, key_ids_of(tokens)
        )
        write_audit(record, conn)  # committed: only now is anything decrypted
    if filters is not None:
        lines = unmask_rows(keyring, rows)
        failed = sum(1 for line in lines if "errors" in line)
    else:
        results = unmask_all(keyring, [token for token in tokens if token is not None])
        lines = [result.as_json() for result in results]
        failed = sum(1 for result in results if result.error is not None)
    for line in lines:
        print(json.dumps(line))
    if filters is not None and not lines:
        print(
            f"login-etl: no rows matched {' and '.join(f'{c}={v}' for c, v in filters.items())}"
            f" (exit {NO_ROWS_MATCHED})",
            file=sys.stderr,
        )
        return NO_ROWS_MATCHED
    if failed:
        print(f"login-etl: {failed} value(s) could not be unmasked (see 'error')", file=sys.stderr)
    return 1 if failed else 0


def _rekey(args: argparse.Namespace) -> int:
    try:
        return _rekey_as_admin(args)
    except pg8000.native.DatabaseError as error:
        details = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
        if details.get("C") != "42501":  # insufficient_privilege
            raise
        raise UserError(
            f"rekey is the database admin's, by design: it rewrites every row of {TABLE}, which"
            f" an operator may only read ({details.get('M', 'permission denied')}). Run it with"
            " the admin's DATABASE_URL (docs/security.md, Database roles)"
        ) from None


def _rekey_as_admin(args: argparse.Namespace) -> int:
    keyring = key_store().keyring()
    identity = caller_arn(boto3.client("sts"))
    with database() as conn:
        if not table_exists(conn, TABLE):
            raise LookupError(
                f"there is no {TABLE} table in this database, nothing to re-key: check DATABASE_URL"
            )
        stale, key_ids = stale_summary(conn, keyring)
        record = AuditRecord(identity, "rekey", "table", 2 * stale, args.reason, None, key_ids)
        write_audit(record, conn)
        with Progress("rows re-keyed", total=stale) as progress:
            done = rekey(
                conn,
                keyring,
                batch_size=args.batch_size,
                stale=stale,
                on_batch=lambda p: progress.update(p.done),
            )
    current = keyring.current.key_id
    print(f"re-keyed {done.done} rows in {done.batches} batches to key {current:08x}")
    return 0


def where_filter(spec: str) -> tuple[str, str]:
    """One ``--where column=value``, checked by the parser: a wrong one is a usage error."""
    try:
        return parse_filter(spec)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--where ")) from None
