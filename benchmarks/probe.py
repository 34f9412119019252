"""Run in a fresh interpreter by the benchmark: ``cold`` start timings, or ``rss`` at 10,000.

Prints one JSON line. The environment (endpoint, database, data key) is the benchmark's stack.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import json  # noqa: E402 - the clock starts before any import
import resource  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402


def sqs_event(bodies: list[str]) -> dict[str, Any]:
    """An SQS event as Lambda delivers it, with fresh message ids."""
    sent = str(int(time.time() * 1000))
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "bench",
                "body": body,
                "attributes": {"SentTimestamp": sent, "ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
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


def main() -> None:
    """Import the handler, answer one batch, report."""
    mode = sys.argv[1]
    warnings.filterwarnings("ignore", message="No application metrics")  # metrics are off
    before_import = time.perf_counter()
    from login_etl.handler import lambda_handler  # noqa: PLC0415 - what is being timed

    imported = time.perf_counter()
    from login_etl_cli.sample_data import generate  # noqa: PLC0415
    from login_etl_local.event_source_mapping import LocalContext  # noqa: PLC0415

    size = 10 if mode == "cold" else 10_000
    event = sqs_event(generate(size, seed=int(time.time()), malformed_ratio=0.01))
    tools = time.perf_counter() - imported  # building the event is not the function's work
    lambda_handler(event, LocalContext())
    answered = time.perf_counter()

    print(
        json.dumps(
            {
                "import_ms": (imported - before_import) * 1000,
                "first_response_ms": (answered - STARTED - tools) * 1000,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


if __name__ == "__main__":
    main()
