"""Run in a fresh interpreter by the benchmark; prints one JSON line of figures.

* ``cold``: login-etl's cold start: ``import login_etl.handler`` timed, then its first
  response: init and a first 1,000-record batch, from the interpreter's start;
* ``typical``: the typical handler's first response, what its user waits for the same way:
  its imports (boto3, pg8000, Powertools' batch utility, cryptography's Fernet), the data key
  read and decrypted as login-etl does it (SSM parameter, KMS ``Decrypt`` through boto3), its
  connect, its first 1,000-record batch;
* ``rss N``: login-etl's peak resident set with an N-record batch.

The event is built outside the clock (its time is subtracted: it is not the function's work).
The environment (endpoint, database, data key parameter) is the benchmark's stack.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import base64  # noqa: E402 - the clock starts before any import
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import unquote, urlsplit  # noqa: E402

FIRST_BATCH = 1_000
# What Lambda puts in a record besides the body: a receipt handle of the length SQS gives
# (324 and 388 characters in two published events; base64 of 267 random bytes is 356), the
# sender, the two timestamps and the body's MD5. They count against the 6 MB payload.
RECEIPT_HANDLE_BYTES = 267
SENDER_ID = "AIDAIENQZJOLO23YVJ4VO"


def sqs_event(bodies: list[str]) -> dict[str, Any]:
    """An SQS event as Lambda delivers it, with fresh message ids and receipt handles."""
    sent = str(int(time.time() * 1000))
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "AQEB"
                + base64.b64encode(os.urandom(RECEIPT_HANDLE_BYTES)).decode("ascii"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": sent,
                    "SenderId": SENDER_ID,
                    "ApproximateFirstReceiveTimestamp": sent,
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:login-queue",
                "awsRegion": "us-east-1",
            }
            for body in bodies
        ]
    }


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's peak resident set (VmHWM), in MB: this one's by default.

    Not ``getrusage``: on Linux its ``ru_maxrss`` survives ``exec``, so a child of a large
    parent reports the parent's peak (measured: 132 MB here against 103 MB standalone).
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _event_and_context(size: int) -> tuple[dict[str, Any], Any, float]:
    """The batch to answer and a Lambda context, and the seconds it took to make them."""
    started = time.perf_counter()
    from login_etl_cli.sample_data import generate  # noqa: PLC0415 - tools, not the function
    from login_etl_local.event_source_mapping import LocalContext  # noqa: PLC0415

    event = sqs_event(generate(size, seed=int(time.time()), malformed_ratio=0.01))
    return event, LocalContext(), time.perf_counter() - started


def login_etl_first_response(size: int) -> dict[str, float]:
    """Import the handler (timed apart), answer one batch."""
    before_import = time.perf_counter()
    from login_etl.handler import lambda_handler  # noqa: PLC0415 - what is being timed

    imported = time.perf_counter()
    event, context, tools = _event_and_context(size)
    lambda_handler(event, context)
    answered = time.perf_counter()
    return {
        "import_ms": (imported - before_import) * 1000,
        "first_response_ms": (answered - STARTED - tools) * 1000,
        "peak_rss_mb": peak_rss_mb(),
    }


def typical_first_response(size: int) -> dict[str, float]:
    """The typical handler's init as its author would write it, then one batch."""
    import boto3  # noqa: PLC0415 - what is being timed
    import pg8000.native  # noqa: PLC0415

    from benchmarks.typical_handler import make_typical_handler  # noqa: PLC0415

    imported = time.perf_counter()
    blob = boto3.client("ssm").get_parameter(
        Name=os.environ["DATA_KEY_PARAMETER"], WithDecryption=True
    )["Parameter"]["Value"]
    key = boto3.client("kms").decrypt(
        CiphertextBlob=base64.b64decode(blob),
        EncryptionContext={"purpose": "login-etl/pii-masking"},
    )["Plaintext"]
    url = urlsplit(os.environ["DATABASE_URL"])
    conn = pg8000.native.Connection(
        user=unquote(url.username or ""),
        password=unquote(url.password or ""),
        host=url.hostname or "localhost",
        port=url.port or 5432,
        database=url.path.lstrip("/"),
    )
    handler = make_typical_handler(conn, base64.urlsafe_b64encode(key))
    event, context, tools = _event_and_context(size)
    handler(event, context)
    answered = time.perf_counter()
    conn.close()
    return {
        "import_ms": (imported - STARTED) * 1000,
        "first_response_ms": (answered - STARTED - tools) * 1000,
    }


def main() -> None:
    """``cold``, ``typical`` or ``rss N``: one JSON line."""
    mode = sys.argv[1]
    warnings.filterwarnings("ignore", message="No application metrics")  # metrics are off
    if mode == "typical":
        figures = typical_first_response(FIRST_BATCH)
    else:
        figures = login_etl_first_response(FIRST_BATCH if mode == "cold" else int(sys.argv[2]))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
