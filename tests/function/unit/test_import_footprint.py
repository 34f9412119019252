"""What ``import login_etl.handler`` loads: what the first SQS batch needs, nothing else.

Lambda runs the import in its init phase; what the SQS trigger never uses (the scheduled drain,
the ledger's prune, boto3 and its S3 transfer machinery, Fernet decryption) is imported by the
code that uses it, so it is no part of the cold start (docs/benchmarks.md, "Cold start"). What
the first batch does need is imported at init, so that the first invocation does not pay for it
instead. The collector is paused while the modules load, and their objects frozen out of its way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache

from login_etl.adapters import log_redaction

# Each with the code path that imports it.
DEFERRED = (
    "login_etl.drain",  # the scheduled trigger
    "login_etl.adapters.sqs_queue",  # the scheduled trigger, the prune's window
    "login_etl.queue_ports",  # the same
    "concurrent.futures.thread",  # never: the function starts no thread of its own
    "login_etl.ledger_pruning",  # the prune
    "login_etl.adapters.postgres.isolation",  # a batch Postgres refused
    "cryptography.fernet",  # unmask (operator tools)
    "boto3",  # never: botocore's clients are the same (adapters/aws.py)
    "s3transfer",
    "multiprocessing",
    "aws_lambda_powertools.utilities.parameters",  # imports boto3; CachedParameter instead
)
FIRST_BATCH_NEEDS = (
    "login_etl.pipeline",
    "login_etl.domain.validation",
    "login_etl.domain.masking",
    "login_etl.adapters.postgres.store",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.utilities.data_classes",
    "botocore.session",  # the SSM and KMS clients
    "pg8000.native",
    "cryptography.hazmat.primitives.ciphers",  # the masks' AES
)

PROBE = """
import gc, json, logging, sys
import login_etl.handler
from login_etl.adapters import log_redaction
filters = {
    name: [type(f).__name__ for f in logging.getLogger(name).filters]
    for name in log_redaction.PAYLOAD_LOGGERS
}
gc_state = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}
print(json.dumps({"modules": sorted(sys.modules), "filters": filters, "gc": gc_state}))
"""


@cache
def after_import() -> tuple[frozenset[str], dict[str, list[str]], dict[str, int]]:
    """``sys.modules``, the payload loggers' filters and the collector's state of a fresh
    interpreter that imported the handler, as Lambda's init does."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    )
    loaded = json.loads(result.stdout)
    return frozenset(loaded["modules"]), loaded["filters"], loaded["gc"]


def test_the_handler_import_leaves_out_what_the_sqs_trigger_never_uses() -> None:
    modules, _, _ = after_import()
    assert [name for name in DEFERRED if name in modules] == []


def test_the_handler_import_brings_what_the_first_batch_needs() -> None:
    modules, _, _ = after_import()
    assert [name for name in FIRST_BATCH_NEEDS if name not in modules] == []


def test_the_handler_import_redacts_botocore_before_any_client_exists() -> None:
    _, filters, _ = after_import()
    assert filters == {name: ["PayloadRedactor"] for name in log_redaction.PAYLOAD_LOGGERS}


def test_the_collector_runs_again_after_the_import_without_the_modules_objects() -> None:
    _, _, collector = after_import()
    assert collector["enabled"]
    assert collector["frozen"] > 10_000  # the imported modules' objects, out of its way
